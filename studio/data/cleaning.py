"""Cleaning of well-formed records: drop too-short ones and exact duplicates, and say so."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from studio.data.formats import Record, record_text_length
from studio.data.report import DataReport, RecordProblem


@dataclass
class LineRecord:
    """A canonical record with the line it came from."""

    line: int | None
    record: Record
    file: str | None = None  # where it came from, when a dataset spans several files


def clean_records(
    records: list[LineRecord], report: DataReport, *, min_chars: int, deduplicate: bool
) -> list[LineRecord]:
    """Keep records that are long enough, distinct, and (preference) have distinct answers."""
    return RecordCleaner(report, min_chars=min_chars, deduplicate=deduplicate).clean(records)


class RecordCleaner:
    """`clean_records` for a file read in parts: what was seen stays between the parts (a
    duplicate is found whichever part its first copy was in), as 16-byte fingerprints only."""

    def __init__(self, report: DataReport, *, min_chars: int, deduplicate: bool) -> None:
        self.report = report
        self.min_chars = min_chars
        self.deduplicate = deduplicate
        # fingerprint -> where its first copy is: its line in the reported file (an int: a
        # million of them must stay small), "FILE:N" in another file, or None
        self.first_line: dict[bytes, int | str | None] = {}

    def clean(self, records: list[LineRecord]) -> list[LineRecord]:
        report, kept = self.report, []
        for item in records:
            length = record_text_length(item.record)
            if length < self.min_chars:
                report.add_cleaned_out(
                    RecordProblem(
                        item.file or report.path,
                        item.line,
                        "too_short",
                        None,
                        f"{length} characters of text, fewer than min_chars={self.min_chars}",
                    )
                )
                continue
            if "chosen" in item.record and item.record["chosen"] == item.record["rejected"]:
                # A pair with equal answers has no preference in it: it only adds noise.
                report.add_cleaned_out(
                    RecordProblem(
                        item.file or report.path,
                        item.line,
                        "same_answers",
                        "rejected",
                        "chosen equals rejected",
                    )
                )
                continue
            if self.deduplicate:
                key = _fingerprint(item.record)
                if key in self.first_line:
                    where = self.first_line[key]
                    where = f"line {where}" if isinstance(where, int) else where
                    report.add_cleaned_out(
                        RecordProblem(
                            item.file or report.path,
                            item.line,
                            "duplicate",
                            None,
                            f"same as the record at {where}" if where else "repeated record",
                        )
                    )
                    continue
                self.first_line[key] = _place(item, report.path)
            kept.append(item)
        return kept


def _place(item: LineRecord, path: str) -> int | str | None:
    """The line within the reported file, or "FILE:N" for a record from another file."""
    if item.line is None:
        return None
    return item.line if item.file in (None, path) else f"{item.file}:{item.line}"


def _fingerprint(record: Record) -> bytes:
    text = json.dumps(record, sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
