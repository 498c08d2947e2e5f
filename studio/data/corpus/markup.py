"""HTML and Word documents to text.

HTML: trafilatura (Apache-2.0; the extractor behind FineWeb and datatrove) keeps the main
content and drops cookie banners, navigation, sidebars, share bars, footers and noscript
text; links become their plain text, headings and lists stay as Markdown. It was chosen over
jusText (paragraph heuristics only, no Markdown) and readability-lxml (returns HTML) because
it scores best on the published extraction benchmarks and keeps structure. A page that is
mostly links (a sitemap, an index, a tag cloud) is reported as a link page, not extracted.

Word: python-docx reads the body in order; headings, list items and tables become Markdown
and hyperlinks their text; footnotes follow the body as "[n] text", with no back-links.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.data.corpus.encoding import decode_bytes
from studio.data.corpus.errors import DocumentError

if TYPE_CHECKING:
    from docx.table import Table

MAX_LINK_TEXT_SHARE = 0.6  # a page whose visible text is mostly link text is a link page
_NOT_CONTENT = (
    ".//script|.//style|.//noscript|.//nav|.//header|.//footer|.//aside"
    "|.//*[@role='navigation' or @role='banner' or @role='contentinfo']"
)


def html_text(path: Path) -> str:
    """The main content of an HTML file as Markdown; DocumentError for link pages."""
    import trafilatura
    from lxml import html as lxml_html

    source, _ = decode_bytes(path.read_bytes())
    if not source.strip():
        return ""
    try:
        tree = lxml_html.document_fromstring(source)
    except Exception as error:  # lxml raises several parser errors; a report line is enough
        raise DocumentError(f"cannot parse HTML: {error}"[:200]) from None
    share, links = link_text_share(tree)
    if links >= 10 and share > MAX_LINK_TEXT_SHARE:
        raise LinkPageError(
            f"link page: {share:.0%} of its text is the text of {links} links (a sitemap or "
            f"index, limit {MAX_LINK_TEXT_SHARE:.0%})"
        )
    text = trafilatura.extract(
        tree,
        output_format="markdown",
        include_links=False,
        include_images=False,
        include_comments=False,
        include_tables=True,
        deduplicate=False,
    )
    return text or ""


class LinkPageError(DocumentError):
    """A page that is a list of links."""


def link_text_share(tree: Any) -> tuple[float, int]:
    """(share of the body's visible text inside <a>, number of links), menus left out: a page
    with a large navigation menu around an article is not a link page."""
    from copy import deepcopy

    body = tree.find("body")
    root = deepcopy(body if body is not None else tree)
    for junk in root.xpath(_NOT_CONTENT):
        junk.drop_tree()
    total = len(" ".join(root.itertext()).split())
    anchors = root.xpath(".//a")
    linked = sum(len(" ".join(anchor.itertext()).split()) for anchor in anchors)
    return (linked / total if total else 0.0), len(anchors)


def docx_text(path: Path) -> str:
    """A Word document as Markdown: headings, list items, tables; links as their text.

    python-docx (MIT, lxml underneath) reads the body in document order. It replaced
    markitdown's mammoth converter here, which parses every part with minidom and took
    seconds per file (most of it in the styles part every Word file carries)."""
    import docx
    from docx.table import Table

    document = docx.Document(str(path))
    blocks = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            blocks.append(_docx_table(block))
            continue
        text = " ".join(block.text.split())
        if not text:
            continue
        style = (block.style.name if block.style is not None else "") or ""
        if style.startswith("Heading") and style[-1:].isdigit():
            text = "#" * min(int(style.split()[-1]), 6) + " " + text
        elif style == "Title":
            text = f"# {text}"
        elif style.startswith("List Number"):
            text = f"1. {text}"
        elif style.startswith("List") or (
            block._p.pPr is not None and block._p.pPr.numPr is not None
        ):
            text = f"* {text}"
        blocks.append(text)
    blocks.extend(_footnotes(document))
    return _join_list_items(blocks)


def _footnotes(document: Any) -> list[str]:
    """The footnotes' text, numbered, for the end of the document (python-docx keeps the
    footnotes part but does not read it; its XML is plain WordprocessingML)."""
    from docx.opc.constants import RELATIONSHIP_TYPE
    from docx.oxml.ns import qn
    from lxml import etree

    notes = []
    for relation in document.part.rels.values():
        if relation.reltype != RELATIONSHIP_TYPE.FOOTNOTES or relation.is_external:
            continue
        root = etree.fromstring(relation.target_part.blob)
        for note in root.iter(qn("w:footnote")):
            if note.get(qn("w:type")) in ("separator", "continuationSeparator"):
                continue
            text = " ".join("".join(node.text or "" for node in note.iter(qn("w:t"))).split())
            if text:
                notes.append(f"[{note.get(qn('w:id'))}] {text}")
    return notes


def _numbered(paragraph: Any) -> bool:
    """A paragraph in a numbering list without a List style (Word's own list buttons)."""
    properties = paragraph._p.pPr
    return properties is not None and properties.numPr is not None


def _docx_table(table: Table) -> str:
    rows = [[" ".join(cell.text.split()) for cell in row.cells] for row in table.rows]
    rows = [row for row in rows if any(row)]
    if not rows:
        return ""
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
    lines.extend("| " + " | ".join(row) + " |" for row in rows[1:])
    return "\n".join(lines)


def _join_list_items(blocks: list[str]) -> str:
    """Blocks with blank lines between, but consecutive list items on adjacent lines."""
    out: list[str] = []
    for block in blocks:
        if not block:
            continue
        is_item = block.startswith(("* ", "1. "))
        if out and is_item and out[-1].split("\n")[-1].startswith(("* ", "1. ")):
            out[-1] += "\n" + block
        else:
            out.append(block)
    return "\n\n".join(out)
