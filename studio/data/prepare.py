"""`ftstudio data prepare DIR -o corpus.jsonl`: build a pre-training corpus from documents.

Two passes, each streaming, so memory stays bounded whatever the size of the folder:

1. Each file under DIR is detected by content, converted to paragraphs (`documents.py`),
   packed into records of at most `max_record_chars` and spooled to disk. Whole documents
   that are exact or near-duplicates of an earlier one are dropped here (`corpus/dedup.py`),
   and the lines of the others are counted for boilerplate.
2. Each spooled record loses the lines shared by `boilerplate_min_documents` or more
   documents, goes through the quality filters (`corpus/quality.py`) and record-level
   deduplication, and is written as `{"text": ..., "source": ...}` or counted as dropped.

Files are read in sorted path order, so of two duplicates the first stays. Hidden files and
folders (names starting with '.') are skipped without counting. The report names every
dropped file with its reason, counts dropped records per filter with samples, and samples
kept text (`corpus/report.py`). Thresholds: `corpus/settings.py`.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from studio.data.corpus.dedup import DuplicateIndex, Sketch
from studio.data.corpus.markup import LinkPageError
from studio.data.corpus.quality import quality_problem
from studio.data.corpus.report import FileOutcome, PrepareReport
from studio.data.corpus.settings import PrepareSettings, load_prepare_settings
from studio.data.documents import Document, DocumentError, document_kind, open_document
from studio.errors import DataError

DEFAULT_MIN_CHARS = PrepareSettings().min_chars
PROSE_KINDS = frozenset({"text", "html", "pdf", "docx"})
MAX_BOILERPLATE_LINE_CHARS = 200  # menus, notices and footers are short lines
MAX_LINES_COUNTED_PER_DOCUMENT = 20_000  # keeps the line counts bounded for huge files
_EXTRA_BLANK_LINES = re.compile(r"\n{3,}")

__all__ = ["FileOutcome", "PrepareReport", "prepare_corpus", "prepare_main"]


def prepare_corpus(
    source: str | Path,
    output: str | Path,
    settings: PrepareSettings | None = None,
    *,
    max_files: int | None = None,
    max_seconds: float | None = None,
    **overrides: Any,
) -> PrepareReport:
    """Convert, clean, filter and deduplicate the documents under `source` into JSON Lines.
    `overrides` replace single settings (`min_chars=10`). `max_files` and `max_seconds` bound
    a preview: reading stops after that many files or seconds, and `report.stopped` says so
    (the deduplication and boilerplate counts then cover only the files read)."""
    settings = (settings or PrepareSettings()).model_copy(update=overrides)
    root = Path(source).expanduser()
    out = Path(output).expanduser()
    if not root.exists():
        raise DataError(f"folder not found: {source}", advice="give the folder of your documents")
    report = PrepareReport(str(source), str(output), settings.model_dump())
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".prepare-", dir=out.parent) as work:
        spool = Path(work) / "records.jsonl"
        line_counts = _first_pass(root, out, spool, settings, report, max_files, max_seconds)
        staging = out.with_name(f".{out.name}.writing")
        _second_pass(spool, staging, line_counts, settings, report)
        if report.records_kept:
            staging.replace(out)
        else:
            staging.unlink(missing_ok=True)
    return report


def _first_pass(
    root: Path,
    out: Path,
    spool: Path,
    settings: PrepareSettings,
    report: PrepareReport,
    max_files: int | None = None,
    max_seconds: float | None = None,
) -> Counter[int]:
    documents = DuplicateIndex(settings.near_duplicate_threshold)
    line_counts: Counter[int] = Counter()
    paths = _document_files(root, out)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    with spool.open("w", encoding="utf-8") as stream:
        for path in paths:
            if max_files is not None and len(report.files) >= max_files:
                report.stopped = f"stopped after the first {max_files} of {len(paths)} files"
                break
            if deadline is not None and time.monotonic() > deadline:
                report.stopped = (
                    f"stopped after {max_seconds:g} s, {len(report.files)} of {len(paths)} files"
                )
                break
            shown = str(path.relative_to(root)) if root.is_dir() else path.name
            outcome = _read_file(path, shown, len(report.files), stream, settings, documents)
            report.files.append(outcome[0])
            if outcome[1] is not None:
                line_counts.update(outcome[1])
    return line_counts


def _read_file(
    path: Path,
    shown: str,
    index: int,
    spool: Any,
    settings: PrepareSettings,
    documents: DuplicateIndex,
) -> tuple[FileOutcome, set[int] | None]:
    """Convert one file into spooled records; the outcome, and its line keys when kept."""
    try:
        kind = document_kind(path)
    except OSError as error:
        return FileOutcome(shown, None, False, "unreadable", error.strerror or str(error)), None
    if kind is None:
        from studio.data.corpus.detect import detect_kind

        detail = f"no converter for this content ({detect_kind(path)[1]})"
        return FileOutcome(shown, None, False, "unsupported", detail), None
    sketch = Sketch()
    line_keys: set[int] = set()
    records = 0
    characters = 0
    try:
        document = open_document(path, kind, settings.max_record_chars)
        for text in _records(document, settings.max_record_chars):
            records += 1
            characters += len(text)
            sketch.update(text)
            if kind in PROSE_KINDS and len(line_keys) < MAX_LINES_COUNTED_PER_DOCUMENT:
                line_keys.update(_line_keys(text))
            spool.write(json.dumps([index, text], ensure_ascii=False) + "\n")
    except LinkPageError as error:
        return FileOutcome(shown, kind, False, "link_page", str(error)), None
    except DocumentError as error:
        return FileOutcome(shown, kind, False, "unreadable", str(error)), None
    outcome = FileOutcome(shown, kind, False, characters=characters, notes=document.notes)
    if document.needs_ocr:
        outcome.reason, outcome.detail = "needs_ocr", document.notes[-1]
        return outcome, None
    if not records:
        outcome.reason, outcome.detail = "empty", "no text after conversion"
        return outcome, None
    match = documents.add(sketch, shown)
    if match is not None:
        outcome.reason, outcome.detail = "duplicate", match.describe()
        return outcome, None
    outcome.records = records
    outcome.kept = True  # provisionally: the second pass may drop every record
    return outcome, line_keys


def _records(document: Document, max_chars: int) -> Iterator[str]:
    from studio.data.corpus.split import records_of

    for record in records_of(document.paragraphs, max_chars, document.joiner):
        text = _tidy(record, keep_blank_lines=document.kind == "source")
        if text:
            yield text


def _tidy(text: str, *, keep_blank_lines: bool = False) -> str:
    """Trailing spaces off every line; outside code, at most one blank line in a row."""
    lines = [line.rstrip() for line in text.split("\n")]
    joined = "\n".join(lines).strip("\n")
    return joined if keep_blank_lines else _EXTRA_BLANK_LINES.sub("\n\n", joined).strip()


def _line_key(line: str) -> int | None:
    line = line.strip()
    if not line or len(line) > MAX_BOILERPLATE_LINE_CHARS or not any(c.isalpha() for c in line):
        return None
    return hash(" ".join(line.lower().split()))


def _line_keys(text: str) -> Iterator[int]:
    for line in text.split("\n"):
        key = _line_key(line)
        if key is not None:
            yield key


def _second_pass(
    spool: Path,
    staging: Path,
    line_counts: Counter[int],
    settings: PrepareSettings,
    report: PrepareReport,
) -> None:
    needed = settings.boilerplate_min_documents
    shared = {key for key, count in line_counts.items() if count >= needed}
    del line_counts
    pieces = DuplicateIndex(settings.near_duplicate_threshold)
    files = report.files
    for outcome in files:
        outcome.characters = 0  # counted again below, for the text that is kept
    seen: Counter[int] = Counter()  # records read so far, per file
    kept: Counter[int] = Counter()  # records kept, per file
    with spool.open(encoding="utf-8") as records, staging.open("w", encoding="utf-8") as out:
        for line in records:
            index, text = json.loads(line)
            outcome = files[index]
            if not outcome.kept:
                continue
            if outcome.kind in PROSE_KINDS and shared:
                text, removed = _without_boilerplate(text, shared)
                outcome.boilerplate_lines += removed
            seen[index] += 1
            label = outcome.path if outcome.records == 1 else f"{outcome.path} (part {seen[index]})"
            name, detail = _judge(text, str(outcome.kind), label, settings, pieces)
            if name is None:
                out.write(json.dumps({"text": text, "source": outcome.path}, ensure_ascii=False))
                out.write("\n")
                report.keep_record(outcome.path, text)
                outcome.characters += len(text)
                kept[index] += 1
            else:
                report.drop_record(name, outcome.path, text, detail)
                outcome.records_dropped[name] = outcome.records_dropped.get(name, 0) + 1
    for index, outcome in enumerate(files):
        if outcome.kept:
            _settle(outcome, kept[index])


def _judge(
    text: str, kind: str, label: str, settings: PrepareSettings, pieces: DuplicateIndex
) -> tuple[str | None, str]:
    """(the filter that drops this record and why), or (None, "") to keep it."""
    if not text.strip():
        return "boilerplate", "only lines shared with other documents"
    problem = quality_problem(text, kind, settings)
    if problem is not None:
        return problem.filter, problem.detail
    sketch = Sketch()
    sketch.update(text)
    match = pieces.add(sketch, label)
    if match is not None:
        return "duplicate", match.describe()
    return None, ""


def _without_boilerplate(text: str, shared: set[int]) -> tuple[str, int]:
    kept, removed = [], 0
    for line in text.split("\n"):
        key = _line_key(line)
        if key is not None and key in shared:
            removed += 1
        else:
            kept.append(line)
    if not removed:
        return text, 0
    return _tidy("\n".join(kept)), removed


def _settle(outcome: FileOutcome, kept: int) -> None:
    """A file is kept when a record of it was kept; else its most common drop reason."""
    counts = outcome.records_dropped
    outcome.records = kept
    if kept:
        return
    outcome.kept = False
    reason, count = max(counts.items(), key=lambda item: item[1])
    outcome.reason = reason
    total = sum(counts.values())
    outcome.detail = f"{count} of {total} records dropped by the {reason} filter" + (
        "" if total == count else f" (and {total - count} by others)"
    )


def _document_files(root: Path, output: Path) -> list[Path]:
    if root.is_file():
        return [root]
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in sorted(names):
            path = Path(folder) / name
            if name.startswith(".") or _same_file(path, output):
                continue
            found.append(path)
    return found


def _same_file(path: Path, other: Path) -> bool:
    try:
        return other.exists() and path.samefile(other)
    except OSError:
        return False


PRINT_LIMIT = 200


def prepare_main(
    source: str,
    output: str,
    *,
    settings_path: str | None = None,
    report_path: str | None = None,
    **overrides: Any,
) -> int:
    """Print the report of `prepare_corpus`; 0 when a corpus was written, 1 when nothing was."""
    settings = load_prepare_settings(settings_path, **overrides)
    report = prepare_corpus(source, output, settings)
    if report_path:
        Path(report_path).write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    print(report.text(PRINT_LIMIT))
    if not report.kept:
        print(f"\nerror: no document was kept, so {output} was not written")
        return 1
    print(f"\nok: train on it with training_type: pretrain and data.path: {output}")
    return 0
