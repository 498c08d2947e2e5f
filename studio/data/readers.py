"""Read dataset files into raw records, each with the line (or row) it came from.

JSON, JSONL, CSV and plain text are read with the standard library only; Parquet and hub
datasets import pyarrow / datasets lazily, so `ftstudio data check` stays fast.

Reads are bounded, because a dataset path can be anything: a FIFO or a device (a symlink to
/dev/zero) is refused before it is opened, a file over `MAX_FILE_BYTES` is refused, and a
record over `MAX_RECORD_BYTES` of text or nested deeper than `MAX_RECORD_DEPTH` is dropped
with its line in the report (one 200 MB record would otherwise take tens of GB to tokenize,
however short `data.max_length` is).
"""

from __future__ import annotations

import csv
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.data.report import RecordProblem
from studio.errors import DataError
from studio.formatting import GIB, MIB

SUPPORTED_SUFFIXES: dict[str, str] = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".txt": "text",
    ".md": "text",
}
# CSV cells holding these fields are JSON lists (a conversation in one cell).
_JSON_CELL_FIELDS = frozenset(
    {"messages", "conversations", "history", "prompt", "chosen", "rejected"}
)
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Bounds on what one dataset file and one record may hold (see the module docstring).
MAX_FILE_BYTES = 8 * GIB
MAX_RECORD_BYTES = 16 * MIB
MAX_RECORD_DEPTH = 64


@dataclass
class RawRecord:
    """One parsed record before validation; `value` is whatever the file held."""

    line: int | None
    value: Any
    # True when the record is known to be within the size and depth limits (from its line).
    within_limits: bool = False


@dataclass
class RawFile:
    """Everything read from one file: parsed records and lines that could not be parsed."""

    path: str  # as the user wrote it, so FILE:LINE jumps work from their shell
    file_type: str  # json | jsonl | csv | parquet | text | hub
    records: list[RawRecord] = field(default_factory=list)
    problems: list[RecordProblem] = field(default_factory=list)

    @property
    def read(self) -> int:
        return len(self.records) + len(self.problems)


def read_dataset_file(
    path: str | Path, *, split: str = "train", base_dir: Path | None = None
) -> RawFile:
    """Read a dataset file (or hub dataset) into raw records with their line numbers."""
    shown = str(path)
    local = Path(path).expanduser()
    if not local.is_absolute() and base_dir is not None:
        local = base_dir / local
    suffix = local.suffix.lower()
    if not local.exists():
        if suffix not in SUPPORTED_SUFFIXES and HUB_NAME.match(shown):
            from studio.data.folders import read_hub_dataset  # it reads rows with this module

            return read_hub_dataset(shown, split)
        raise DataError(
            f"dataset file not found: {shown}",
            advice="check the path (relative paths are read from the folder you run ftstudio "
            "in), or give a hub dataset name such as 'owner/name'",
        )
    if local.is_dir():
        raise DataError(
            f"{shown} is a folder, not a dataset file",
            advice="point data.path at one .json, .jsonl, .csv, .parquet or .txt file",
        )
    _check_regular_file(local, shown)
    file_type = SUPPORTED_SUFFIXES.get(suffix)
    if file_type is None:
        raise DataError(
            f"unsupported dataset file type '{suffix or '(none)'}': {shown}",
            advice="supported: " + ", ".join(SUPPORTED_SUFFIXES),
        )
    if file_type == "parquet":
        raw = _read_parquet(local, shown)
    else:
        text = _read_text(local, shown)
        reader = {"json": _parse_json, "jsonl": _parse_jsonl, "csv": _parse_csv}.get(
            file_type, _parse_paragraphs
        )
        raw = reader(text, shown)
    if raw.read == 0:
        raise _no_records(shown)
    return _bounded(raw)


def _check_regular_file(path: Path, shown: str) -> None:
    """Refuse a FIFO, a device or a socket before opening it (opening a FIFO blocks; a device
    such as /dev/zero never ends), and a file too large to read."""
    try:
        info = path.stat()  # follows a symlink to what it points at
    except OSError as error:
        raise _cannot_read(shown, error) from None
    if not stat.S_ISREG(info.st_mode):
        kind = (
            "a FIFO (named pipe)"
            if stat.S_ISFIFO(info.st_mode)
            else "a device"
            if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
            else "a socket"
            if stat.S_ISSOCK(info.st_mode)
            else "not a regular file"
        )
        target = f" (a link to {os.path.realpath(path)})" if path.is_symlink() else ""
        raise DataError(
            f"{shown} is {kind}{target}, not a dataset file",
            advice="write the data to a regular file first and point data.path at it",
        )
    if info.st_size > MAX_FILE_BYTES:
        raise DataError(
            f"{shown} is {info.st_size / GIB:.1f} GiB; the limit is "
            f"{MAX_FILE_BYTES / GIB:.0f} GiB per dataset file",
            advice="split it into several files and train on a part, or sample it",
        )


def record_limit_problem(value: Any) -> tuple[str, str] | None:
    """(reason, detail) when a record is over the size or depth limit, else None.

    Iterative (a record nested 100,000 deep must not hit Python's recursion limit) and
    stops as soon as a limit is passed."""
    size = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_RECORD_DEPTH:
            return "too_deep", f"nested deeper than {MAX_RECORD_DEPTH} levels"
        if isinstance(item, str):
            size += len(item)
        elif isinstance(item, dict):
            size += sum(len(key) for key in item if isinstance(key, str))
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
        else:
            size += 8
        if size > MAX_RECORD_BYTES:
            return "too_large", (
                f"over {MAX_RECORD_BYTES // MIB} MiB of text in one record; split it into "
                "several records"
            )
    return None


def _bounded(raw: RawFile) -> RawFile:
    """Move records over the size or depth limit to the file's problems."""
    kept = []
    for record in raw.records:
        problem = None if record.within_limits else record_limit_problem(record.value)
        if problem is None:
            kept.append(record)
        else:
            raw.problems.append(RecordProblem(raw.path, record.line, problem[0], None, problem[1]))
    raw.records = kept
    return raw


def _read_text(path: Path, shown: str) -> str:
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise _cannot_read(shown, error) from None
    if len(data) > MAX_FILE_BYTES:
        raise DataError(
            f"{shown} holds more than {MAX_FILE_BYTES / GIB:.0f} GiB",
            advice="split it into several files and train on a part, or sample it",
        )
    if not data.strip():
        raise _empty_file(shown)
    try:
        # utf-8-sig: files saved by Excel / Notepad start with a byte-order mark.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise _not_utf8(shown, line, error.start, error.reason) from None


def _cannot_read(shown: str, error: OSError) -> DataError:
    return DataError(f"cannot read {shown}: {error.strerror or error}")


def _empty_file(shown: str) -> DataError:
    return DataError(f"{shown} is empty", advice="the dataset file has no content")


def _no_records(shown: str) -> DataError:
    return DataError(f"{shown} holds no records", advice="the file has no data rows")


def _not_utf8(shown: str, line: int, byte: int, reason: str) -> DataError:
    return DataError(
        f"not valid UTF-8 (byte {byte}): {reason}",
        location=f"{shown}:{line}",
        advice="save the file as UTF-8 (for example `iconv -f latin1 -t utf-8`)",
    )


def _too_large_line(path: str, line: int, size: int) -> RecordProblem:
    """A line not even parsed: the parse alone of a huge line costs many times its size."""
    detail = f"a line of {size / MIB:.0f} MiB; records may hold at most "
    detail += f"{MAX_RECORD_BYTES // MIB} MiB of text, split it into several records"
    return RecordProblem(path, line, "too_large", None, detail)


# ---------------------------------------------------------------- JSON Lines


def _parse_jsonl(text: str, shown: str) -> RawFile:
    raw = RawFile(shown, "jsonl")
    # Lines end at "\n" only, as editors count them: str.splitlines would also break at
    # U+2028, U+0085 and the like, which JSON strings may hold as they are.
    for number, line in enumerate(text.split("\n"), start=1):
        _add_jsonl_line(raw, number, line)
    return raw


_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _holds_lone_surrogate(value: Any) -> bool:
    """Whether a string in `value` holds half of a UTF-16 pair (JSON may escape one, but it is
    no character: no tokenizer takes it). A whole pair was joined into its character."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _line_within_limits(line: str) -> bool:
    """Whether a record parsed from `line` is surely within the limits, without walking it:
    `record_limit_problem` counts at most 8 per character of JSON (a scalar of one character
    counts 8), and every level of nesting opens with a bracket."""
    return (
        8 * len(line) <= MAX_RECORD_BYTES and line.count("{") + line.count("[") <= MAX_RECORD_DEPTH
    )


def _add_jsonl_line(raw: RawFile, number: int, line: str) -> None:
    """Parse one line of a JSON Lines file into `raw`: a record, a problem, or nothing."""
    if not line.strip():
        return
    if len(line) > MAX_RECORD_BYTES:
        raw.problems.append(_too_large_line(raw.path, number, len(line)))
        return
    try:
        value = json.loads(line)
        if _ESCAPED_SURROGATE.search(line) and _holds_lone_surrogate(value):
            detail = "a \\uD800-\\uDFFF escape that is half a character (the text was cut "
            detail += "mid-character); fix or remove that text"
            raw.problems.append(RecordProblem(raw.path, number, "bad_json", None, detail))
            return
        raw.records.append(RawRecord(number, value, _line_within_limits(line)))
    except json.JSONDecodeError as error:
        raw.problems.append(
            RecordProblem(raw.path, number, "bad_json", None, f"{error.msg} (column {error.colno})")
        )
    except RecursionError:
        detail = f"nested deeper than {MAX_RECORD_DEPTH} levels"
        raw.problems.append(RecordProblem(raw.path, number, "too_deep", None, detail))


# A line of more bytes than this holds more than MAX_RECORD_BYTES characters in any UTF-8.
_LONGEST_LINE = 4 * MAX_RECORD_BYTES + 1


def _skip_line(stream: Any) -> int:
    """Read past the rest of a line without keeping it; the bytes skipped."""
    skipped = 0
    while True:
        data = stream.readline(MIB)
        skipped += len(data)
        if not data or data.endswith(b"\n"):
            return skipped


def stream_jsonl(path: Path, shown: str, chunk_lines: int) -> Iterator[RawFile]:
    """A JSON Lines file read as it goes, in RawFiles of up to `chunk_lines` lines each:
    the same records and problems as `read_dataset_file` gives, never the whole file in
    memory. The same refusals too (not a regular file, too large, empty, not UTF-8, no
    records), raised when they are found."""
    _check_regular_file(path, shown)
    offset = 0
    number = 0
    seen_content = False
    read = 0
    try:
        stream = path.open("rb")
    except OSError as error:
        raise _cannot_read(shown, error) from None
    with stream:
        chunk = RawFile(shown, "jsonl")
        while True:
            try:
                data = stream.readline(_LONGEST_LINE)
                if len(data) == _LONGEST_LINE and not data.endswith(b"\n"):
                    # Longer than any record may be in any encoding: skipped unread.
                    size = len(data) + _skip_line(stream)
                    number += 1
                    offset += size
                    seen_content = True
                    chunk.problems.append(_too_large_line(shown, number, size))
                    continue
            except OSError as error:
                raise _cannot_read(shown, error) from None
            if not data:
                break
            number += 1
            seen_content = seen_content or bool(data.strip())
            try:
                # utf-8-sig: files saved by Excel / Notepad start with a byte-order mark.
                line = data.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise _not_utf8(shown, number, offset + error.start, error.reason) from None
            offset += len(data)
            _add_jsonl_line(chunk, number, line.removesuffix("\n"))
            if number % chunk_lines == 0:
                read += chunk.read
                yield _bounded(chunk)
                chunk = RawFile(shown, "jsonl")
    if not seen_content:
        raise _empty_file(shown)
    if read + chunk.read == 0:
        raise _no_records(shown)
    yield _bounded(chunk)


# ---------------------------------------------------------------- JSON


def _parse_json(text: str, shown: str) -> RawFile:
    try:
        document = json.loads(text)
    except RecursionError:
        raise DataError(
            f"the JSON is nested too deeply to read (records may nest {MAX_RECORD_DEPTH} "
            "levels at most)",
            location=shown,
            advice="check how the file was made; a dataset is an array of flat records",
        ) from None
    except json.JSONDecodeError as error:
        hint = "is this JSON Lines? then name the file .jsonl" if _looks_like_jsonl(text) else None
        raise DataError(
            f"not valid JSON: {error.msg} (column {error.colno})",
            location=f"{shown}:{error.lineno}",
            advice=hint or "fix the JSON syntax at that line",
        ) from None
    raw = RawFile(shown, "json")
    key = _records_key(document, shown)
    # Walk the text a second time to learn the line each record starts on.
    starts = _array_element_starts(text, key)
    items = document if key is None else document[key]
    line_of = _LineCounter(text)
    for index, item in enumerate(items):
        line = line_of(starts[index]) if index < len(starts) else None
        raw.records.append(RawRecord(line, item))
    return raw


def _records_key(document: Any, shown: str) -> str | None:
    """None for a top-level array; else the key of the one list of records in an object."""
    if isinstance(document, list):
        return None
    if isinstance(document, dict):
        lists = [k for k, v in document.items() if isinstance(v, list)]
        if len(lists) == 1 and lists[0] not in _JSON_CELL_FIELDS:
            return lists[0]
        if not lists or lists[0] in _JSON_CELL_FIELDS:
            raise DataError(
                "a JSON dataset must be an array of records, but this file holds one object",
                location=shown,
                advice="wrap the records in [ ... ], or use JSON Lines (.jsonl), one per line",
            )
        raise DataError(
            f"the JSON object holds several lists ({', '.join(lists)}); which are the records?",
            location=shown,
            advice="keep only the list of records, as a top-level array",
        )
    raise DataError(
        f"a JSON dataset must be an array of records, not a {type(document).__name__}",
        location=shown,
    )


def _array_element_starts(text: str, key: str | None) -> list[int]:
    """Character offsets where each element of the records array starts."""
    decoder = json.JSONDecoder()
    index = _skip_space(text, 0)
    if key is not None:
        # Inside the top-level object: step over members until `key`.
        index = _skip_space(text, index + 1)
        while index < len(text) and text[index] != "}":
            name, index = decoder.raw_decode(text, index)
            index = _skip_space(text, index)
            index = _skip_space(text, index + 1)  # ':'
            if name == key:
                break
            _, index = decoder.raw_decode(text, index)
            index = _skip_space(text, index)
            if text[index] == ",":
                index = _skip_space(text, index + 1)
    starts: list[int] = []
    index = _skip_space(text, index + 1)  # past '['
    while index < len(text) and text[index] != "]":
        starts.append(index)
        _, index = decoder.raw_decode(text, index)
        index = _skip_space(text, index)
        if index < len(text) and text[index] == ",":
            index = _skip_space(text, index + 1)
    return starts


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


class _LineCounter:
    """Line number of increasing offsets in one pass over the text."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._offset = 0
        self._line = 1

    def __call__(self, offset: int) -> int:
        self._line += self._text.count("\n", self._offset, offset)
        self._offset = offset
        return self._line


def _looks_like_jsonl(text: str) -> bool:
    lines = [line for line in text.splitlines()[:3] if line.strip()]
    return len(lines) >= 2 and all(line.lstrip().startswith("{") for line in lines)


# ---------------------------------------------------------------- CSV


def _parse_csv(text: str, shown: str) -> RawFile:
    raw = RawFile(shown, "csv")
    # The default cap (128 KiB a cell) is too small for long documents in a text column.
    csv.field_size_limit(2**31 - 1)
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = [name.strip() for name in next(reader)]
    except (StopIteration, csv.Error) as error:
        raise DataError(f"cannot read the CSV header: {error}", location=f"{shown}:1") from None
    if not any(header):
        raise DataError("the CSV header row is empty", location=f"{shown}:1")
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise DataError(f"CSV syntax: {error}", location=f"{shown}:{reader.line_num}") from None
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            raw.problems.append(
                RecordProblem(
                    shown,
                    line,
                    "unknown_format",
                    None,
                    f"row has {len(row)} cells but the header has {len(header)} "
                    "(a comma in a value that is not in quotes?)",
                )
            )
            continue
        raw.records.append(RawRecord(line, _csv_record(header, row)))
    return raw


def _csv_record(header: list[str], row: list[str]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, cell in zip(header, row, strict=False):
        if name in _JSON_CELL_FIELDS and cell.lstrip().startswith("["):
            try:
                record[name] = json.loads(cell)
                continue
            except json.JSONDecodeError:
                pass  # left as a string; validation reports the wrong type
        record[name] = cell
    return record


# ---------------------------------------------------------------- plain text


def _parse_paragraphs(text: str, shown: str) -> RawFile:
    """Records are paragraphs separated by blank lines, each with its first line."""
    raw = RawFile(shown, "text")
    paragraph: list[str] = []
    first = 0
    for number, line in enumerate([*text.splitlines(), ""], start=1):
        if line.strip():
            if not paragraph:
                first = number
            paragraph.append(line.rstrip())
        elif paragraph:
            raw.records.append(RawRecord(first, {"text": "\n".join(paragraph)}))
            paragraph = []
    return raw


# ---------------------------------------------------------------- Parquet and hub


def _read_parquet(path: Path, shown: str) -> RawFile:
    try:
        from pyarrow import parquet

        rows = parquet.read_table(path).to_pylist()
    except ImportError:
        raise DataError("reading Parquet needs pyarrow", advice="pip install pyarrow") from None
    except Exception as error:  # pyarrow raises many types for corrupt files
        raise DataError(f"cannot read Parquet file: {error}", location=shown) from None
    return RawFile(shown, "parquet", [RawRecord(n, row) for n, row in enumerate(rows, start=1)])
