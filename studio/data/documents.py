"""Turn document files into plain text with maintained converters.

- .html / .htm / .xhtml and .docx: markitdown's converters (HTML through BeautifulSoup and
  markdownify, Word through mammoth), giving Markdown that keeps headings and lists;
- .pdf: pypdf's text extraction, page by page;
- plain text, Markdown and source code: decoded as UTF-8, or with the encoding
  charset-normalizer detects when the file is not UTF-8.

Each converter is imported only when a file of its type turns up. A file that cannot be
read or converted raises `DocumentError` with a short reason, never a library traceback.
"""

from __future__ import annotations

from pathlib import Path

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
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | SOURCE_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx"}


class DocumentError(Exception):
    """A file that could not be turned into text; the message says why."""


def document_kind(path: Path) -> str | None:
    """'text', 'source', 'html', 'pdf', 'docx', or None for unsupported files."""
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix in SOURCE_SUFFIXES:
        return "source"
    if suffix in HTML_SUFFIXES:
        return "html"
    if suffix in (".pdf", ".docx"):
        return suffix[1:]
    return None


def document_text(path: Path) -> str:
    """The text of one supported file; DocumentError when it cannot be read."""
    kind = document_kind(path)
    if kind is None:
        raise DocumentError(f"unsupported file type '{path.suffix or '(none)'}'")
    try:
        if kind in ("text", "source"):
            return decode_text(path.read_bytes())
        if kind == "pdf":
            return _pdf_text(path)
        return _markitdown_text(path, kind)
    except DocumentError:
        raise
    except MemoryError:
        raise DocumentError("too large to convert in memory") from None
    except Exception as error:  # every converter has its own exceptions; report, never crash
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        reason = type(error).__name__ + (f": {detail}" if detail else "")
        raise DocumentError(f"cannot convert {kind}: {reason[:200]}") from None


def decode_text(data: bytes) -> str:
    """Bytes to text: UTF-8 (with or without BOM), else the detected encoding."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        # Not text in any encoding; decoded with replacement characters so the garbled-text
        # check sees (and reports) it.
        return data.decode("utf-8", errors="replace")
    return str(best)


def _pdf_text(path: Path) -> str:
    import logging

    from pypdf import PdfReader

    # pypdf logs every repair it attempts; what matters reaches the report as an error.
    logging.getLogger("pypdf").setLevel(logging.ERROR)

    reader = PdfReader(str(path))
    if reader.is_encrypted:
        try:
            reader.decrypt("")
        except Exception:
            raise DocumentError("encrypted PDF") from None
    pages = [page.extract_text() or "" for page in reader.pages]
    return "\n\n".join(page.strip() for page in pages if page.strip())


def _markitdown_text(path: Path, kind: str) -> str:
    from markitdown import StreamInfo
    from markitdown.converters import DocxConverter, HtmlConverter

    converter = DocxConverter() if kind == "docx" else HtmlConverter()
    info = StreamInfo(extension=path.suffix.lower(), local_path=str(path))
    with path.open("rb") as stream:
        return converter.convert(stream, info).markdown
