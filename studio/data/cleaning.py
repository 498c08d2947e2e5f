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
    kept: list[LineRecord] = []
    first_line: dict[bytes, str | None] = {}
    for item in records:
        length = record_text_length(item.record)
        if length < min_chars:
            report.add_cleaned_out(
                RecordProblem(
                    item.file or report.path,
                    item.line,
                    "too_short",
                    None,
                    f"{length} characters of text, fewer than min_chars={min_chars}",
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
        if deduplicate:
            key = _fingerprint(item.record)
            if key in first_line:
                where = first_line[key]
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
            first_line[key] = _place(item, report.path)
        kept.append(item)
    return kept


def _place(item: LineRecord, path: str) -> str | None:
    """ "line N" within the reported file, or "FILE:N" for a record from another file."""
    if item.line is None:
        return None
    return f"line {item.line}" if item.file in (None, path) else f"{item.file}:{item.line}"


def _fingerprint(record: Record) -> bytes:
    text = json.dumps(record, sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
