"""What `ftstudio data prepare` would make of a folder of documents or a document file, for
the Config screen's Dataset tab: the report of a bounded trial run into a temporary folder.

`build_corpus_preview` converts documents (PDF, HTML, Word): call it on a worker thread.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

from studio.errors import StudioError

DOCUMENT_SUFFIXES = (".pdf", ".html", ".htm", ".docx", ".txt", ".md")
DATASET_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".arrow")
PREVIEW_MAX_FILES = 50
PREVIEW_MAX_SECONDS = 10.0
LISTED_PER_SECTION = 20  # dropped files and notes shown; the rest are counted
FOLDER_ENTRIES_LOOKED_AT = 500


@dataclass
class CorpusPreview:
    source: str  # as the user wrote it in data.path
    command: str  # the line that prepares it for real
    report_text: str = ""  # `PrepareReport.text`, as `ftstudio data prepare` prints it
    kept_samples: tuple[tuple[str, str], ...] = ()  # (file, text)
    error: str | None = None


def is_document_source(path: Path) -> bool:
    """A document file `data prepare` reads, or a folder holding such files and no dataset
    files (a folder of JSON Lines shards is a dataset, not a corpus to prepare)."""
    if path.is_file():
        return path.suffix.lower() in DOCUMENT_SUFFIXES
    if not path.is_dir():
        return False
    documents = False
    seen = 0
    for _folder, folders, files in os.walk(path):
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in files:
            suffix = Path(name).suffix.lower()
            if suffix in DATASET_SUFFIXES:
                return False
            documents = documents or suffix in DOCUMENT_SUFFIXES
            seen += 1
        if seen >= FOLDER_ENTRIES_LOOKED_AT:
            break
    return documents


def prepare_command(source: str) -> str:
    name = Path(source.rstrip("/\\")).stem or "corpus"
    return f"ftstudio data prepare {shlex.quote(source)} -o {shlex.quote(f'{name}.jsonl')}"


def build_corpus_preview(
    source: str,
    path: Path,
    *,
    max_files: int = PREVIEW_MAX_FILES,
    max_seconds: float = PREVIEW_MAX_SECONDS,
) -> CorpusPreview:
    """Prepare `path` into a temporary folder, reading at most `max_files` files or for at
    most `max_seconds`, and keep the report; the temporary corpus is deleted."""
    from studio.data.prepare import prepare_corpus

    preview = CorpusPreview(source=source, command=prepare_command(source))
    with tempfile.TemporaryDirectory(prefix="ftstudio-prepare-preview-") as work:
        try:
            report = prepare_corpus(
                path,
                Path(work) / "corpus.jsonl",
                max_files=max_files,
                max_seconds=max_seconds,
            )
        except StudioError as error:
            preview.error = error.message + (f"\ntry: {error.advice}" if error.advice else "")
            return preview
        except OSError as error:
            preview.error = f"could not read {source}: {error.strerror or error}"
            return preview
    report.source = source
    report.output = "(preview: nothing written)"
    preview.report_text = report.text(LISTED_PER_SECTION)
    preview.kept_samples = tuple((sample.source, sample.text) for sample in report.kept_samples)
    return preview
