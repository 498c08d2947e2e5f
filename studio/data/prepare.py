"""`ftstudio data prepare DIR -o corpus.jsonl`: build a pre-training corpus from documents.

Every supported file under DIR (text, Markdown, HTML, PDF, Word and source code; see
`documents.py`) becomes one `{"text": ..., "source": ...}` record, unless it is dropped:

- `unsupported`: a file type with no converter;
- `unreadable`: the converter failed (corrupt, encrypted, not what its name says);
- `empty`: no text at all after conversion;
- `too_short`: fewer than `min_chars` characters (100 by default);
- `garbled`: more than `max_garbled` of its characters are replacement, control,
  unassigned or private-use characters (see `text_quality.py`);
- `duplicate`: exactly the same text as a file kept before it (files are read in sorted
  path order, so the first one stays).

Hidden files and folders (names starting with '.') are skipped without counting. The report
counts each reason and names every dropped file with its reason.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from studio.data.documents import DocumentError, document_kind, document_text
from studio.data.text_quality import DEFAULT_MAX_BAD_SHARE, measure_garbling
from studio.errors import DataError

DEFAULT_MIN_CHARS = 100
DROP_REASONS = ("unsupported", "unreadable", "empty", "too_short", "garbled", "duplicate")


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file."""

    path: str
    kind: str | None
    kept: bool
    reason: str | None = None
    detail: str = ""
    characters: int = 0

    def __str__(self) -> str:
        text = f"{self.path}: {self.reason}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class PrepareReport:
    source: str
    output: str
    min_chars: int
    max_garbled: float
    files: list[FileOutcome] = field(default_factory=list)

    @property
    def kept(self) -> list[FileOutcome]:
        return [outcome for outcome in self.files if outcome.kept]

    @property
    def dropped(self) -> list[FileOutcome]:
        return [outcome for outcome in self.files if not outcome.kept]

    def dropped_by_reason(self) -> dict[str, int]:
        counts = Counter(outcome.reason for outcome in self.dropped)
        return {reason: counts[reason] for reason in DROP_REASONS if counts[reason]}

    def kept_by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(str(outcome.kind) for outcome in self.kept).items()))

    def summary(self) -> str:
        kept = self.kept
        characters = sum(outcome.characters for outcome in kept)
        by_kind = ", ".join(f"{kind} {count}" for kind, count in self.kept_by_kind().items())
        lines = [
            f"read {len(self.files)} files under {self.source}",
            f"kept {len(kept)} documents, {characters:,} characters"
            + (f" ({by_kind})" if by_kind else "")
            + f" -> {self.output}",
        ]
        dropped = self.dropped_by_reason()
        if dropped:
            reasons = ", ".join(f"{reason} {count}" for reason, count in dropped.items())
            lines.append(f"dropped {len(self.dropped)} files: {reasons}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kept_count"] = len(self.kept)
        data["dropped_count"] = len(self.dropped)
        data["dropped_by_reason"] = self.dropped_by_reason()
        return data


def prepare_corpus(
    source: str | Path,
    output: str | Path,
    *,
    min_chars: int = DEFAULT_MIN_CHARS,
    max_garbled: float = DEFAULT_MAX_BAD_SHARE,
) -> PrepareReport:
    """Convert, filter and deduplicate the documents under `source` into JSON Lines."""
    root = Path(source).expanduser()
    out = Path(output).expanduser()
    if not root.exists():
        raise DataError(f"folder not found: {source}", advice="give the folder of your documents")
    report = PrepareReport(str(source), str(output), min_chars, max_garbled)
    seen: dict[bytes, str] = {}
    records: list[str] = []
    for path in _document_files(root, out):
        shown = str(path.relative_to(root)) if root.is_dir() else path.name
        outcome, text = _convert(path, shown, min_chars, max_garbled, seen)
        report.files.append(outcome)
        if outcome.kept:
            records.append(json.dumps({"text": text, "source": shown}, ensure_ascii=False))
    if records:
        _write_lines(out, records)
    return report


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


def _convert(
    path: Path, shown: str, min_chars: int, max_garbled: float, seen: dict[bytes, str]
) -> tuple[FileOutcome, str]:
    kind = document_kind(path)
    if kind is None:
        detail = f"no converter for '{path.suffix or '(no extension)'}' files"
        return FileOutcome(shown, None, False, "unsupported", detail), ""
    try:
        text = document_text(path)
    except (DocumentError, OSError) as error:
        return FileOutcome(shown, kind, False, "unreadable", str(error)), ""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    length = len(text)
    if not text:
        return FileOutcome(shown, kind, False, "empty", "no text after conversion"), ""
    if length < min_chars:
        detail = f"{length} characters, fewer than --min-chars {min_chars}"
        return FileOutcome(shown, kind, False, "too_short", detail, length), ""
    garbling = measure_garbling(text)
    if garbling.share > max_garbled:
        detail = (
            f"{garbling.share:.0%} of characters are replacement, control or unassigned "
            f"characters (limit {max_garbled:.0%})"
        )
        return FileOutcome(shown, kind, False, "garbled", detail, length), ""
    key = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
    if key in seen:
        detail = f"same text as {seen[key]}"
        return FileOutcome(shown, kind, False, "duplicate", detail, length), ""
    seen[key] = shown
    return FileOutcome(shown, kind, True, characters=length), text


def _same_file(path: Path, other: Path) -> bool:
    try:
        return other.exists() and path.samefile(other)
    except OSError:
        return False


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.writing")
    staging.write_text("\n".join(lines) + "\n", encoding="utf-8")
    staging.replace(path)


PRINT_LIMIT = 200


def prepare_main(
    source: str,
    output: str,
    *,
    min_chars: int = DEFAULT_MIN_CHARS,
    max_garbled: float = DEFAULT_MAX_BAD_SHARE,
    report_path: str | None = None,
) -> int:
    """Print the report of `prepare_corpus`; 0 when a corpus was written, 1 when nothing was."""
    report = prepare_corpus(source, output, min_chars=min_chars, max_garbled=max_garbled)
    if report_path:
        Path(report_path).write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    print(report.summary())
    dropped = report.dropped
    if dropped:
        print(f"\ndropped files ({len(dropped)}):")
        for outcome in dropped[:PRINT_LIMIT]:
            print(f"  {outcome}")
        if len(dropped) > PRINT_LIMIT:
            print(f"  ... and {len(dropped) - PRINT_LIMIT} more")
    if not report.kept:
        print(f"\nerror: no document was kept, so {output} was not written")
        return 1
    print(f"\nok: train on it with training_type: pretrain and data.path: {output}")
    return 0
