"""PDF to paragraphs with pdfplumber (MIT, on pdfminer.six), which gives every line its
position, size and the page's ruled tables.

- Running headers and footers: a line in the top or bottom tenth of the page that recurs
  (digits ignored, so "Page 3 of 9" matches "Page 4 of 9") on at least half the pages, and
  bare page numbers, are removed.
- Lines are joined into paragraphs; a gap clearly wider than the usual line spacing, or a
  change of font size, starts a new one. A paragraph that does not end a sentence at the
  bottom of a page continues on the next.
- A word hyphenated at a line end ("interna-" / "tional") is joined.
- A ruled table stays together, one Markdown row per table row.
- Pages with images and no text are reported: they need OCR, which this does not do.
- Encrypted files open when no password is needed (AES needs the `cryptography` package);
  a file that needs a password is reported as such.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.data.corpus.errors import DocumentError

_MARGIN_SHARE = 0.1  # top and bottom tenth of a page hold running headers and footers
_PAGE_NUMBER = re.compile(
    r"^[-–—\s]*(page|p\.|seite|página|pagina)?\s*(\d+|[ivxlcdm]+)(\s*(of|/|von|de)\s*\d+)?[-–—\s]*$",
    re.I,
)
_SENTENCE_END = (".", "!", "?", ":", '"', "'", "”", "’", ")", "]")


@dataclass
class PdfText:
    text: str
    pages: int
    ocr_pages: list[int] = field(default_factory=list)
    removed_lines: int = 0


@dataclass
class _Line:
    page: int
    top: float
    bottom: float
    size: float
    text: str
    in_margin: bool
    is_table: bool = False


def pdf_text(path: Path) -> PdfText:
    """The paragraphs of a PDF; DocumentError when it cannot be opened."""
    import pdfplumber
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from pdfplumber.utils.exceptions import PdfminerException

    try:
        document = pdfplumber.open(path, password="")
    except PdfminerException as error:
        cause = error.args[0] if error.args else error
        if isinstance(cause, PDFPasswordIncorrect):
            raise DocumentError(
                "encrypted PDF that needs a password to open; save a copy without the "
                "password (e.g. `qpdf --decrypt --password=... in.pdf out.pdf`) and prepare that"
            ) from None
        if isinstance(cause, PDFEncryptionError | ImportError) or "cryptography" in str(cause):
            raise DocumentError(
                f"encrypted PDF that this installation cannot decrypt ({cause}); "
                "`pip install cryptography` reads AES-encrypted files"
            ) from None
        raise DocumentError(f"cannot read PDF: {type(cause).__name__}: {cause}"[:200]) from None
    with document:
        lines: list[_Line] = []
        ocr_pages = []
        for number, page in enumerate(document.pages, start=1):
            page_lines = _page_lines(page, number)
            if not page_lines and page.images:
                ocr_pages.append(number)
            lines.extend(page_lines)
            page.close()  # pdfplumber caches every object of a page; free them as we go
        pages = len(document.pages)
    body = _drop_running_lines(lines, pages)
    return PdfText(_paragraphs(body), pages, ocr_pages, len(lines) - len(body))


def _page_lines(page: Any, number: int) -> list[_Line]:
    height = float(page.height)
    ruled = page.objects.get("line") or page.objects.get("rect")
    tables = page.find_tables() if ruled else []
    boxes = [table.bbox for table in tables]
    lines = []
    for line in page.extract_text_lines(return_chars=True):
        middle_x, middle_y = (line["x0"] + line["x1"]) / 2, (line["top"] + line["bottom"]) / 2
        if any(x0 <= middle_x <= x1 and top <= middle_y <= bottom for x0, top, x1, bottom in boxes):
            continue
        in_margin = line["bottom"] < height * _MARGIN_SHARE or line["top"] > height * (
            1 - _MARGIN_SHARE
        )
        size = float(line["chars"][0]["size"]) if line["chars"] else 0.0
        text = " ".join(line["text"].split())
        if text:
            lines.append(_Line(number, line["top"], line["bottom"], size, text, in_margin))
    for table in tables:
        rows = [[" ".join((cell or "").split()) for cell in row] for row in table.extract()]
        rows = [row for row in rows if any(row)]
        if rows:
            top, bottom = table.bbox[1], table.bbox[3]
            lines.append(_Line(number, top, bottom, 0.0, _markdown_table(rows), False, True))
    lines.sort(key=lambda line: line.top)
    return lines


def _markdown_table(rows: list[list[str]]) -> str:
    width = max(len(row) for row in rows)
    rows = [row + [""] * (width - len(row)) for row in rows]
    out = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * width]
    out.extend("| " + " | ".join(row) + " |" for row in rows[1:])
    return "\n".join(out)


def _margin_key(text: str) -> str:
    return re.sub(r"\d+", "0", " ".join(text.lower().split()))


def _drop_running_lines(lines: list[_Line], pages: int) -> list[_Line]:
    pages_with: dict[str, set[int]] = {}
    for line in lines:
        if line.in_margin:
            pages_with.setdefault(_margin_key(line.text), set()).add(line.page)
    needed = max(2, (pages + 1) // 2)
    running = {key for key, found in pages_with.items() if len(found) >= needed}
    return [
        line
        for line in lines
        if not (
            line.in_margin and (_margin_key(line.text) in running or _PAGE_NUMBER.match(line.text))
        )
    ]


def _paragraphs(lines: list[_Line]) -> str:
    gaps = [
        after.top - before.bottom
        for before, after in itertools.pairwise(lines)
        if before.page == after.page and not before.is_table and not after.is_table
    ]
    usual = sorted(gaps)[len(gaps) // 4] if gaps else 0.0
    paragraphs: list[str] = []
    current = ""
    previous: _Line | None = None
    for line in lines:
        if previous is None or _starts_paragraph(previous, line, usual, current):
            if current:
                paragraphs.append(current)
            current = line.text
        else:
            current = _join(current, line.text)
        previous = line
    if current:
        paragraphs.append(current)
    return "\n\n".join(paragraphs)


def _starts_paragraph(before: _Line, line: _Line, usual: float, current: str) -> bool:
    if before.is_table or line.is_table:
        return True
    if before.page != line.page:
        return current.endswith(_SENTENCE_END)
    if abs(before.size - line.size) > 0.5:
        return True
    return line.top - before.bottom > max(usual * 1.8, usual + 3.0)


def _join(text: str, line: str) -> str:
    if len(text) >= 2 and text.endswith("-") and text[-2].isalpha() and line[:1].islower():
        return text[:-1] + line
    return f"{text} {line}"
