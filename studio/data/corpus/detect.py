"""What a file is, from its content; the extension only breaks ties between text kinds.

Containers have signatures: `%PDF-` for PDF, a ZIP holding `word/document.xml` for Word.
Markup is recognised by its tags. For text with no known extension, magika (Google's
content-type model, Apache-2.0) tells prose from source code.
"""

from __future__ import annotations

import re
import zipfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from studio.data.corpus.encoding import SAMPLE_BYTES, detect_encoding

if TYPE_CHECKING:
    from magika import Magika

TEXT_SUFFIXES = frozenset({".txt", ".text", ".md", ".markdown", ".rst", ".tex", ".org"})
SOURCE_SUFFIXES = frozenset(
    {
        ".py", ".pyi", ".js", ".jsx", ".mjs", ".ts", ".tsx", ".java", ".kt", ".kts",
        ".scala", ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".cs", ".go", ".rs",
        ".rb", ".php", ".swift", ".m", ".mm", ".r", ".jl", ".lua", ".pl", ".pm", ".hs",
        ".ml", ".ex", ".exs", ".erl", ".clj", ".dart", ".sh", ".bash", ".zsh", ".ps1",
        ".sql", ".css", ".scss", ".vue", ".svelte", ".toml", ".yaml", ".yml", ".ini",
        ".cfg", ".proto", ".cmake", ".gradle",
    }
)  # fmt: skip
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
KINDS = ("text", "source", "html", "pdf", "docx")
_BINARY_SIGNATURES = (
    b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"\x7fELF", b"MZ", b"\x1f\x8b", b"BZh",
    b"7z\xbc\xaf", b"Rar!", b"\xd0\xcf\x11\xe0", b"OggS", b"ID3", b"fLaC", b"RIFF",
)  # fmt: skip
_HTML_START = re.compile(
    rb"^\s*(<!--.*?-->\s*)*(<!doctype\s+html|<html|<\?xml[^>]*>\s*<html)", re.I | re.S
)
_HTML_TAG = re.compile(r"<(html|head|body|div|p|span|a\s+href|script|style|nav|table|br)\b", re.I)
_MAGIKA_TEXT = frozenset({"txt", "markdown", "rst", "latex", "unknown", "empty"})


def detect_kind(path: Path) -> tuple[str | None, str]:
    """(kind, how it was decided); kind None means no converter for this content."""
    with path.open("rb") as stream:
        head = stream.read(SAMPLE_BYTES)
    suffix = path.suffix.lower()
    if b"%PDF-" in head[:1024]:
        return "pdf", "PDF signature"
    if head.startswith(b"PK\x03\x04") and (_is_docx(path) or suffix == ".docx"):
        return "docx", "Word package"
    if suffix in (".pdf", ".docx"):
        # Named as a container but without its signature: a damaged file. Its converter
        # says what is wrong, which is more use than reading it as text.
        return suffix[1:], "file name"
    if head.startswith(b"PK\x03\x04"):
        return None, "ZIP archive"
    if head.startswith(_BINARY_SIGNATURES):
        return None, "binary file"
    encoding = detect_encoding(head)
    text = head[encoding.bom_length :].decode(
        "utf-8" if encoding.name == "unknown" else encoding.name, errors="replace"
    )
    known = suffix in TEXT_SUFFIXES or suffix in SOURCE_SUFFIXES or suffix in HTML_SUFFIXES
    if not known and "\x00" in text[:4096]:
        return None, "binary file"
    if _HTML_START.match(text.encode("utf-8", "ignore")[:4096]) or (
        suffix not in SOURCE_SUFFIXES and len(_HTML_TAG.findall(text[:8192])) >= 3
    ):
        return "html", "HTML markup"
    if suffix in SOURCE_SUFFIXES:
        return "source", "source code"
    if known:
        return "text", "text"
    label, is_text = _magika_label(head)
    if not is_text:
        return None, f"binary file (magika: {label})"
    if label in _MAGIKA_TEXT:
        return "text", f"text (magika: {label})"
    return "source", f"source code (magika: {label})"


def _is_docx(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as package:
            return "word/document.xml" in package.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


@cache
def _magika() -> Magika:
    from magika import Magika

    return Magika()


def _magika_label(head: bytes) -> tuple[str, bool]:
    output = _magika().identify_bytes(head).output
    return str(output.label), bool(output.is_text)
