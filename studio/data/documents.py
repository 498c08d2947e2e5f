"""Turn one document file into paragraphs of clean text, whatever its type.

The type comes from the content (`corpus/detect.py`), not the name. Each kind has its
converter: plain text and source code are decoded in chunks (`corpus/encoding.py`), so a
huge file never sits in memory whole; PDF through pdfplumber (`corpus/pdf.py`); HTML through
trafilatura and Word through python-docx (`corpus/markup.py`). Prose then gets ftfy's repair
of mojibake. A file that cannot be read raises `DocumentError` with a short reason, never a
library traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from studio.data.corpus.detect import detect_kind
from studio.data.corpus.encoding import decode_bytes, read_text_chunks, repair_text
from studio.data.corpus.errors import DocumentError
from studio.data.corpus.split import code_blocks, paragraphs_of

__all__ = ["Document", "DocumentError", "decode_text", "document_kind", "open_document"]


@dataclass
class Document:
    """A converted file: its kind, its paragraphs (a stream) and what conversion noticed."""

    kind: str
    paragraphs: Iterator[str]
    notes: list[str] = field(default_factory=list)
    needs_ocr: bool = False
    joiner: str = "\n\n"  # "" for source code, whose blocks keep their own blank lines


def document_kind(path: Path) -> str | None:
    """'text', 'source', 'html', 'pdf', 'docx', or None when no converter reads the content."""
    return detect_kind(path)[0]


def decode_text(data: bytes) -> str:
    """Bytes to text: BOM, UTF-8, UTF-16 without BOM, else the detected code page."""
    return decode_bytes(data)[0]


def open_document(path: Path, kind: str, max_chars: int) -> Document:
    """The paragraphs of `path`, read as `kind`; DocumentError when it cannot be converted."""
    try:
        return _open(path, kind, max_chars)
    except DocumentError:
        raise
    except MemoryError:
        raise DocumentError("too large to convert in memory") from None
    except Exception as error:  # every converter has its own exceptions; report, never crash
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        reason = type(error).__name__ + (f": {detail}" if detail else "")
        raise DocumentError(f"cannot convert {kind}: {reason[:200]}") from None


def _open(path: Path, kind: str, max_chars: int) -> Document:
    if kind in ("text", "source"):
        encoding, chunks = read_text_chunks(path)
        notes = [] if encoding.how == "utf-8" else [f"read as {encoding.name} ({encoding.how})"]
        if kind == "source":
            return Document(kind, _safe(code_blocks(chunks, max_chars), kind), notes, joiner="")
        paragraphs = (repair_text(paragraph) for paragraph in paragraphs_of(chunks, max_chars))
        return Document(kind, _safe(paragraphs, kind), notes)
    if kind == "pdf":
        from studio.data.corpus.pdf import pdf_text

        pdf = pdf_text(path)
        notes = []
        if pdf.removed_lines:
            notes.append(
                f"{pdf.removed_lines} running header, footer and page-number lines removed"
            )
        if pdf.ocr_pages:
            shown = ", ".join(str(page) for page in pdf.ocr_pages[:10])
            notes.append(
                f"{len(pdf.ocr_pages)} of {pdf.pages} pages are images without a text layer "
                f"(pages {shown}); run OCR on them (e.g. ocrmypdf) to include their text"
            )
        needs_ocr = bool(pdf.ocr_pages) and not pdf.text.strip()
        return Document(kind, _split(repair_text(pdf.text), max_chars), notes, needs_ocr)
    from studio.data.corpus.markup import docx_text, html_text

    text = html_text(path) if kind == "html" else docx_text(path)
    return Document(kind, _split(repair_text(text), max_chars))


def _split(text: str, max_chars: int) -> Iterator[str]:
    return paragraphs_of([text], max_chars)


def _safe(paragraphs: Iterator[str], kind: str) -> Iterator[str]:
    """Errors while streaming a file become DocumentError like errors while opening it."""
    try:
        yield from paragraphs
    except OSError as error:
        raise DocumentError(f"cannot read {kind}: {error.strerror or error}") from None
