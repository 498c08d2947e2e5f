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
    detected = (detect_record_format(record.value) for record in raw.records)
    votes = Counter(found for found in detected if found is not None)
    if not votes:
        fields = sorted(
            {
                key
                for record in raw.records[:50]
                if isinstance(record.value, dict)
                for key in record.value
            }
        )
        raise DataError(
            "cannot tell the record format: "
            + (
                f"the records have fields {', '.join(fields)}"
                if fields
                else "no record is an object"
            ),
            location=raw.path,
            advice=f"expected fields: {_EXPECTED}. Rename the columns, or set data.format",
        )
    # Ties go to the format of the first record, which is what a user looks at first.
    first = next(
        (f for f in (detect_record_format(r.value) for r in raw.records) if f is not None), None
    )
    best = max(votes.values())
    return first if first is not None and votes[first] == best else votes.most_common(1)[0][0]


def validate_records(
    raw: RawFile, data_format: str, system_prompt: str | None, report: DataReport
) -> list[LineRecord]:
    """Convert each record; record each failure in the report with its line."""
    report.format = data_format
    report.kind = FORMAT_KIND[data_format]
    report.read += raw.read
    for problem in raw.problems:
        report.add_problem(problem)
    converted: list[LineRecord] = []
    dropped_parts: Counter[str] = Counter()
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
    if dropped_parts:
        # Text-only training: the text of a multimodal message is kept, the rest cannot be.
        listed = ", ".join(f"{n} {kind}" for kind, n in sorted(dropped_parts.items()))
        report.notes.append(
            f"{raw.path}: dropped content parts that are not text ({listed}); their text parts "
            "are kept"
        )
    return converted


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
