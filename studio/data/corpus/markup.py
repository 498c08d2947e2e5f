"""HTML and Word documents to text.

HTML: trafilatura (Apache-2.0; the extractor behind FineWeb and datatrove) keeps the main
content and drops cookie banners, navigation, sidebars, share bars, footers and noscript
text; links become their plain text, headings and lists stay as Markdown. It was chosen over
jusText (paragraph heuristics only, no Markdown) and readability-lxml (returns HTML) because
it scores best on the published extraction benchmarks and keeps structure. A page that is
mostly links (a sitemap, an index, a tag cloud) is reported as a link page, not extracted.

Word: markitdown's converter (mammoth underneath) gives headings, lists and tables as
Markdown; link targets and footnote back-references are removed so links read as text.
"""

from __future__ import annotations

import re
from pathlib import Path

from studio.data.corpus.encoding import decode_bytes
from studio.data.corpus.errors import DocumentError

MAX_LINK_TEXT_SHARE = 0.6  # a page whose visible text is mostly link text is a link page
_MARKDOWN_LINK = re.compile(
    r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\((?:[^()\s]|\([^()]*\))*(?:\s+\"[^\"]*\")?\)"
)
_FOOTNOTE_BACKLINK = re.compile(r"\s*\[↑\]\([^)]*\)")
_BARE_ANCHOR = re.compile(r"<a\s+id=\"[^\"]*\"\s*>\s*</a>", re.I)


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


def link_text_share(tree: object) -> tuple[float, int]:
    """(share of the body's visible text inside <a>, number of links)."""
    body = tree.find("body") if hasattr(tree, "find") else None
    root = body if body is not None else tree
    for junk in root.xpath(".//script|.//style|.//noscript"):
        junk.drop_tree()
    total = len(" ".join(root.itertext()).split())
    anchors = root.xpath(".//a")
    linked = sum(len(" ".join(anchor.itertext()).split()) for anchor in anchors)
    return (linked / total if total else 0.0), len(anchors)


def docx_text(path: Path) -> str:
    from markitdown import StreamInfo
    from markitdown.converters import DocxConverter

    info = StreamInfo(extension=".docx", local_path=str(path))
    with path.open("rb") as stream:
        markdown = DocxConverter().convert(stream, info).markdown
    return plain_links(markdown)


def plain_links(markdown: str) -> str:
    """Markdown links and images to their text; footnote anchors and back-links removed."""
    text = _FOOTNOTE_BACKLINK.sub("", _BARE_ANCHOR.sub("", markdown))
    return _MARKDOWN_LINK.sub(lambda match: match.group(1), text)
