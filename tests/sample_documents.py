"""Write small documents of every type `ftstudio data prepare` reads, for tests.

The .docx and .pdf writers produce the smallest valid files of their format (a WordprocessingML
package, a one-page PDF with the standard Helvetica font), so tests need no document library.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
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
        f"<h1>Mills</h1><p>The <b>mill</b> wheel turns. {PROSE.replace('mill', 'forge')}</p>"
        "</body></html>",
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
