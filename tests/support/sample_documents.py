"""Write small documents of every type `ftstudio data prepare` reads, for tests.

The .docx and .pdf writers produce the smallest valid files of their format (a WordprocessingML
package, a one-page PDF with the standard Helvetica font), so tests need no document library.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

PROSE = (
    "The river runs through the old town, past the mill and under seven stone bridges. "
    "In spring the water rises and the fishermen wait on the banks for the trout to return."
)


def write_docx(path: Path, paragraphs: list[str]) -> None:
    body = "".join(
        f'<w:p><w:r><w:t xml:space="preserve">{escape(text)}</w:t></w:r></w:p>'
        for text in paragraphs
    )
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/'
            '2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>'
        ),
        "word/document.xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            f"<w:body>{body}</w:body></w:document>"
        ),
    }
    with zipfile.ZipFile(path, "w") as package:
        for name, text in parts.items():
            package.writestr(name, text)


def write_pdf(path: Path, lines: list[str]) -> None:
    def literal(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    content = "BT /F1 11 Tf 72 720 Td 14 TL " + " ".join(f"({literal(t)}) Tj T*" for t in lines)
    content += " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    data = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(data))
        data += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    table = len(data)
    data += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    data += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    data += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    data += f"startxref\n{table}\n%%EOF\n".encode()
    path.write_bytes(data)


def write_mixed_folder(folder: Path) -> dict[str, str]:
    """One good document of each supported kind plus one of each kind of bad file.

    Returns {file name: expected outcome}: 'kept' or the drop reason.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text(f"Notes on rivers.\n\n{PROSE}\n", encoding="utf-8")
    (folder / "guide.md").write_text(
        f"# Bridges\n\n- stone\n- wood\n\n{PROSE.replace('river', 'canal')}\n", encoding="utf-8"
    )
    (folder / "page.html").write_text(
        "<html><head><title>Mills</title><script>var hidden = 1;</script></head><body>"
        f"<article><h1>Mills</h1><p>The <b>mill</b> wheel turns. "
        f"{PROSE.replace('mill', 'forge')}</p></article></body></html>",
        encoding="utf-8",
    )
    write_pdf(
        folder / "report.pdf",
        [
            "Annual report of the harbour office.",
            "Ships arrived in every month of the year, most of them in August.",
            "The lighthouse keeper counted four hundred and twelve sailings.",
        ],
    )
    write_docx(
        folder / "letter.docx",
        [
            "Dear council, the bridge over the canal needs new railings.",
            "The old ones have rusted through in several places and children play nearby.",
        ],
    )
    sub = folder / "code"
    sub.mkdir(exist_ok=True)
    (sub / "tides.py").write_text(
        '"""Tide tables."""\n\n\ndef high_tide(day: int) -> float:\n'
        "    # The tide comes twelve hours and twenty-five minutes later each cycle.\n"
        "    return (day * 24.84) % 24\n",
        encoding="utf-8",
    )
    (folder / "latin1.txt").write_bytes(
        ("Café crème et pâtisserie: le marché du matin ouvre à sept heures, "
         "près de la fontaine où les pêcheurs vendent leurs poissons.").encode("cp1252")
    )  # fmt: skip
    (folder / "empty.txt").write_text("", encoding="utf-8")
    (folder / "blank.md").write_text("   \n\n  \n", encoding="utf-8")
    (folder / "short.txt").write_text("Too short to teach anything.", encoding="utf-8")
    (folder / "zz_copy_of_notes.txt").write_text(f"Notes on rivers.\n\n{PROSE}\n", encoding="utf-8")
    (folder / "garbled.txt").write_bytes(bytes(range(0, 32)) * 8 + b"\xff\xfe\xfd" * 40)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    (folder / "broken.docx").write_bytes(b"not a zip archive at all")
    (folder / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (folder / ".hidden.txt").write_text(PROSE + " hidden", encoding="utf-8")
    return {
        "notes.txt": "kept",
        "guide.md": "kept",
        "page.html": "kept",
        "report.pdf": "kept",
        "letter.docx": "kept",
        "code/tides.py": "kept",
        "latin1.txt": "kept",
        "empty.txt": "empty",
        "blank.md": "empty",
        "short.txt": "too_short",
        "zz_copy_of_notes.txt": "duplicate",
        "garbled.txt": "garbled",
        "broken.pdf": "unreadable",
        "broken.docx": "unreadable",
        "image.png": "unsupported",
    }


# --- Documents written with real writers (reportlab, python-docx), for the quality tests ---

# Paragraphs as printed lines, hyphenated where a typesetter broke a word.
REPORT_PAGES = [
    [
        [
            "The harbour office counted every ship that entered the port during the",
            "year. Most of them arrived in August, when the weather was calm and the",
            "interna-",
            "tional ferries ran twice a day between the islands and the mainland.",
        ],
        [
            "The lighthouse keeper kept a separate log of four hundred and twelve sail-",
            "ings. His numbers agree with the office to within three ships, which the",
            "auditors found remarkable for a record written by hand in a damp tower.",
        ],
    ],
    [
        [
            "Repairs to the north quay began in March and ended in October. The con-",
            "tractor replaced the rotten timber piles with concrete ones and raised the",
            "deck by half a metre against the winter storms that flooded it twice.",
        ],
        [
            "Fishing boats paid lower fees than in the year before, because the council",
            "wanted to keep the small fleet in the harbour all through the winter. The",
        ],
    ],
    [
        [
            "fleet grew from twenty-one to twenty-six boats, and two of the new boats",
            "belong to young crews who trained at the harbour school in the spring.",
        ],
        [
            "The harbour school itself moved into the old customs house, which the",
            "council bought from the state for a symbolic price of one crown.",
        ],
    ],
    [
        [
            "Next year the office plans to dredge the inner basin, so that larger",
            "ferries can berth at low tide. The costs are shown in the table below.",
        ],
    ],
]
REPORT_TABLE = [["Month", "Ships", "Fees"], ["June", "31", "4,120"], ["August", "58", "7,930"]]


def write_report_pdf(
    path: Path,
    pages: list[list[list[str]]],
    *,
    header: str = "Harbour Office - Annual Report 2025",
    footer: str = "Confidential - internal use only",
    table: list[list[str]] | None = None,
    encrypt: object | None = None,
) -> None:
    """A report printed as a typesetter would: a running header and footer and a page number
    on every page, paragraphs as given lines (12 pt apart, a blank gap between paragraphs),
    and optionally a ruled table after the text of the last page."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas
    from reportlab.platypus import Table, TableStyle

    width, height = A4
    pdf = canvas.Canvas(str(path), pagesize=A4, encrypt=encrypt)
    for number, paragraphs in enumerate(pages, start=1):
        pdf.setFont("Helvetica", 9)
        pdf.drawString(72, height - 40, header)
        pdf.drawString(72, 40, footer)
        pdf.drawRightString(width - 72, 40, f"Page {number} of {len(pages)}")
        pdf.setFont("Helvetica", 11)
        y = height - 90
        for paragraph in paragraphs:
            for line in paragraph:
                pdf.drawString(72, y, line)
                y -= 14
            y -= 12
        if table and number == len(pages):
            grid = Table(table)
            grid.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, (0, 0, 0))]))
            _, table_height = grid.wrapOn(pdf, width - 144, y)
            grid.drawOn(pdf, 72, y - table_height - 10)
        pdf.showPage()
    pdf.save()


def write_scanned_pdf(path: Path) -> None:
    """A PDF whose one page is a picture of text: no text layer at all."""
    from PIL import Image, ImageDraw
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    picture = Image.new("RGB", (400, 200), "white")
    ImageDraw.Draw(picture).text((20, 90), "A scanned letter with no text layer", fill="black")
    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.drawImage(ImageReader(picture), 72, 500, width=400, height=200)
    pdf.showPage()
    pdf.save()


def write_aes_pdf(path: Path, source: Path, *, user_password: str = "") -> None:
    """`source` re-saved AES-256 encrypted; with an empty user password it opens without one."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(str(source)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-256")
    with path.open("wb") as stream:
        writer.write(stream)


_NOUNS = (
    "harbour", "ferry", "captain", "lighthouse", "island", "market", "bridge", "council",
    "river", "mill", "fisherman", "storm", "quay", "school", "engine", "garden", "winter",
    "library", "station", "valley", "village", "orchard", "teacher", "doctor", "baker",
    "road", "forest", "meadow", "tower", "museum", "festival", "boat", "letter", "painter",
)  # fmt: skip
_VERBS = (
    "repaired", "visited", "described", "measured", "painted", "opened", "crossed", "built",
    "counted", "followed", "watched", "carried", "remembered", "sold", "found", "moved",
)  # fmt: skip
_ADJECTIVES = (
    "old", "quiet", "busy", "narrow", "bright", "wooden", "northern", "early", "small",
    "famous", "muddy", "careful", "green", "patient", "distant", "new",
)  # fmt: skip


def prose(seed: int, words: int = 200) -> str:
    """Readable, varied English-like sentences (no repeated phrases), `words` words long."""
    import random

    chooser = random.Random(seed)
    sentences: list[str] = []
    count = 0
    while count < words:
        sentence = (
            f"The {chooser.choice(_ADJECTIVES)} {chooser.choice(_NOUNS)} "
            f"{chooser.choice(_VERBS)} the {chooser.choice(_ADJECTIVES)} "
            f"{chooser.choice(_NOUNS)} near the {chooser.choice(_NOUNS)} in {1800 + count}."
        )
        sentences.append(sentence)
        count += len(sentence.split())
    return " ".join(sentences)


SITE_PAGE = """<!DOCTYPE html>
<html><head><title>{title} - Harbour Town</title>
<style>body {{ font-family: serif; }}</style><script>var tracking = "{title}";</script></head>
<body>
<div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience on
our website. <button>Accept all cookies</button> <a href="/cookies">Cookie settings</a></div>
<header><nav class="menu"><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li>
<li><a href="/ferries">Ferries</a></li><li><a href="/about">About us</a></li>
<li><a href="/contact">Contact</a></li></ul></nav></header>
<aside class="sidebar"><h3>Popular posts</h3><ul><li><a href="/a">Ten best boats</a></li>
<li><a href="/b">Our new ferry timetable</a></li></ul></aside>
<main><article><h1>{title}</h1>
{paragraphs}
<p>Subscribe to the Harbour Town newsletter for the weekly harbour news and the tides.</p>
</article>
<div class="share-bar social">Share on Facebook Share on Twitter Share by email</div></main>
<noscript>Please enable JavaScript to view the interactive tide map.</noscript>
<footer><p>Copyright 2025 Harbour Town Council. All rights reserved.</p>
<a href="/privacy">Privacy policy</a> <a href="/imprint">Imprint</a></footer>
</body></html>
"""


def site_page(title: str, paragraphs: list[str]) -> str:
    """A web page as content systems write them: a cookie banner, navigation, a sidebar, a
    share bar, noscript text and a footer around the article; links inside the article."""
    body = "\n".join(
        f'<p>{text} See the <a href="/notes/{index}">harbour notes</a> for more.</p>'
        for index, text in enumerate(paragraphs)
    )
    return SITE_PAGE.format(title=title, paragraphs=body)


def sitemap_page(count: int = 40) -> str:
    links = "".join(
        f'<li><a href="/page/{index}">Harbour page number {index}</a></li>'
        for index in range(count)
    )
    return (
        "<html><head><title>Sitemap</title></head>"
        f"<body><h1>Sitemap</h1><ul>{links}</ul></body></html>"
    )


def write_word(
    path: Path,
    title: str,
    paragraphs: list[str],
    link: tuple[str, str],
    footnote: str | None = None,
) -> None:
    """A Word document written by python-docx: a heading, paragraphs, a bulleted list, a
    table, a hyperlink (text, url) in the last paragraph and optionally a footnote on the
    first paragraph."""
    import docx
    from docx.opc.constants import RELATIONSHIP_TYPE
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    document = docx.Document()
    document.add_heading(title, 1)
    for text in paragraphs:
        document.add_paragraph(text)
    document.add_paragraph("stone piers", style="List Bullet")
    document.add_paragraph("wooden piers", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for (row, column), text in {
        (0, 0): "Pier",
        (0, 1): "Length",
        (1, 0): "North",
        (1, 1): "120 m",
    }.items():
        table.cell(row, column).text = text
    paragraph = document.add_paragraph("The plans are on ")
    relation = paragraph.part.relate_to(link[1], RELATIONSHIP_TYPE.HYPERLINK, is_external=True)
    hyperlink = OxmlElement("w:hyperlink")
    hyperlink.set(qn("r:id"), relation)
    run = OxmlElement("w:r")
    text_element = OxmlElement("w:t")
    text_element.text = link[0]
    run.append(text_element)
    hyperlink.append(run)
    paragraph._p.append(hyperlink)
    if footnote:
        _add_footnote(document, document.paragraphs[1], footnote)
    document.save(str(path))


def _add_footnote(document: Any, paragraph: Any, text: str) -> None:
    """A footnote as Word writes one: a footnotes part with the separator notes and note 1,
    and a reference to it at the end of `paragraph` (python-docx has no API for this)."""
    from docx.opc.constants import RELATIONSHIP_TYPE
    from docx.opc.packuri import PackURI
    from docx.opc.part import Part
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    namespace = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<w:footnotes xmlns:w="{namespace}">'
        '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
        '<w:footnote w:type="continuationSeparator" w:id="0"><w:p><w:r><w:continuationSeparator/>'
        "</w:r></w:p></w:footnote>"
        f'<w:footnote w:id="1"><w:p><w:r><w:t xml:space="preserve">{escape(text)}</w:t></w:r></w:p>'
        "</w:footnote></w:footnotes>"
    )
    part = Part(
        PackURI("/word/footnotes.xml"),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.footnotes+xml",
        xml.encode(),
        document.part.package,
    )
    document.part.relate_to(part, RELATIONSHIP_TYPE.FOOTNOTES)
    run = OxmlElement("w:r")
    reference = OxmlElement("w:footnoteReference")
    reference.set(qn("w:id"), "1")
    run.append(reference)
    paragraph._p.append(run)
