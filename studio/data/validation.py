"""Decide a file's record format, and turn every raw record into a canonical one or a problem."""

from __future__ import annotations

from collections import Counter

from studio.data.cleaning import LineRecord
from studio.data.formats import (
    FORMAT_FIELDS,
    FORMAT_KIND,
    RecordIssue,
    convert_record,
    detect_record_format,
)
from studio.data.readers import RawFile
from studio.data.report import DataReport, RecordProblem
from studio.errors import DataError

_EXPECTED = "; ".join(f"{name}: {fields}" for name, fields in FORMAT_FIELDS.items())


def detect_file_format(raw: RawFile, requested: str) -> str:
    """The format of the whole file: the requested one, or the most common among records."""
    if raw.file_type == "text":
        if requested not in {"auto", "text"}:
            raise DataError(
                f"a plain text file holds raw text, not '{requested}' records",
                location=raw.path,
                advice="use data.format: text (or auto), or a .jsonl file for structured records",
            )
        return "text"
    if requested != "auto":
        return requested
    votes = FormatVotes()
    votes.add(raw)
    return votes.decide(raw.path)


class FormatVotes:
    """Each record's vote for the format of the whole file, gathered as records are read: the
    most common format wins, a tie goes to the first record's (what a user looks at first)."""

    SAMPLED = 50  # records whose fields an error message lists

    def __init__(self) -> None:
        self.votes: Counter[str] = Counter()
        self.first: str | None = None
        self.sampled = 0
        self.fields: set[str] = set()

    def add(self, raw: RawFile) -> None:
        for record in raw.records:
            found = detect_record_format(record.value)
            if found is not None:
                self.votes[found] += 1
                self.first = self.first or found
            if self.sampled < self.SAMPLED:
                self.sampled += 1
                if isinstance(record.value, dict):
                    self.fields.update(key for key in record.value if isinstance(key, str))

    def decide(self, path: str) -> str:
        if not self.votes:
            fields = sorted(self.fields)
            raise DataError(
                "cannot tell the record format: "
                + (
                    f"the records have fields {', '.join(fields)}"
                    if fields
                    else "no record is an object"
                ),
                location=path,
                advice=f"expected fields: {_EXPECTED}. Rename the columns, or set data.format",
            )
        best = max(self.votes.values())
        if self.first is not None and self.votes[self.first] == best:
            return self.first
        return self.votes.most_common(1)[0][0]


def validate_records(
    raw: RawFile, data_format: str, system_prompt: str | None, report: DataReport
) -> list[LineRecord]:
    """Convert each record; record each failure in the report with its line."""
    dropped_parts: Counter[str] = Counter()
    converted = convert_records(raw, data_format, system_prompt, report, dropped_parts)
    note = dropped_parts_note(raw.path, dropped_parts)
    if note is not None:
        report.notes.append(note)
    return converted


def convert_records(
    raw: RawFile,
    data_format: str,
    system_prompt: str | None,
    report: DataReport,
    dropped_parts: Counter[str],
) -> list[LineRecord]:
    """`validate_records` for one part of a file read in parts: the content parts dropped
    are counted in `dropped_parts`, for one `dropped_parts_note` at the end."""
    report.format = data_format
    report.kind = FORMAT_KIND[data_format]
    report.read += raw.read
    for problem in raw.problems:
        report.add_problem(problem)
    converted: list[LineRecord] = []
    for item in raw.records:
        try:
            record = convert_record(item.value, data_format, system_prompt, dropped_parts)
        except RecordIssue as issue:
            issue = _explain_other_format(item.value, data_format, issue)
            report.add_problem(
                RecordProblem(raw.path, item.line, issue.reason, issue.field, issue.detail)
            )
            continue
        converted.append(LineRecord(item.line, record, raw.path))
    return converted


def dropped_parts_note(path: str, dropped_parts: Counter[str]) -> str | None:
    """Text-only training: the text of a multimodal message is kept, the rest cannot be."""
    if not dropped_parts:
        return None
    listed = ", ".join(f"{n} {kind}" for kind, n in sorted(dropped_parts.items()))
    return f"{path}: dropped content parts that are not text ({listed}); their text parts are kept"


def _explain_other_format(value: object, data_format: str, issue: RecordIssue) -> RecordIssue:
    """A record missing the file's fields is usually in another format, or in none."""
    if issue.reason != "missing_field":
        return issue
    own = detect_record_format(value)
    if own == data_format:
        return issue
    keys = ", ".join(sorted(value)) if isinstance(value, dict) else ""
    expected = f"this file is {data_format} ({FORMAT_FIELDS[data_format]})"
    if own is None:
        detail = f"fields {{{keys}}} fit no format; {expected}"
    else:
        detail = f"looks like {own}, but {expected}"
    return RecordIssue("unknown_format", None, detail)
