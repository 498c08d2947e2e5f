"""`data prepare` on documents written by real writers: PDF layout, HTML main content, Word,
type detection from content, and encodings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.data.corpus.detect import detect_kind
from studio.data.corpus.encoding import decode_bytes, detect_encoding, repair_text
from studio.data.corpus.pdf import pdf_text
from studio.data.documents import DocumentError
from studio.data.prepare import prepare_corpus
from tests.support.sample_documents import (
    REPORT_PAGES,
    REPORT_TABLE,
    prose,
    site_page,
    sitemap_page,
    write_aes_pdf,
    write_report_pdf,
    write_scanned_pdf,
    write_word,
)


@pytest.fixture(scope="module")
def report_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pdf") / "report.pdf"
    write_report_pdf(path, REPORT_PAGES, table=REPORT_TABLE)
    return path


def corpus_texts(folder: Path, output: Path, **settings: object) -> dict[str, str]:
    report = prepare_corpus(folder, output, **settings)
    assert report.kept, report.summary()
    texts: dict[str, str] = {}
    for line in output.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        texts[record["source"]] = texts.get(record["source"], "") + record["text"]
    return texts


def test_pdf_headers_footers_and_page_numbers_appear_once_at_most(report_pdf: Path) -> None:
    pdf = pdf_text(report_pdf)
    assert pdf.pages == 4
    assert "Harbour Office - Annual Report" not in pdf.text
    assert "Confidential" not in pdf.text and "Page " not in pdf.text
    assert pdf.removed_lines == 8  # a header and a footer line on each of 4 pages


def test_pdf_lines_become_paragraphs_with_hyphenation_joined(report_pdf: Path) -> None:
    text = pdf_text(report_pdf).text
    paragraphs = text.split("\n\n")
    assert "international ferries" in text and "interna-" not in text
    assert "sailings" in text and "contractor" in text
    assert paragraphs[0].startswith("The harbour office counted") and "\n" not in paragraphs[0]
    assert paragraphs[0].endswith("between the islands and the mainland.")
    # A paragraph broken by a page end continues on the next page in one piece.
    assert any(
        "all through the winter. The fleet grew from twenty-one to twenty-six" in part
        for part in paragraphs
    )
    assert "twenty-one" in text  # a real hyphen inside a line stays
    assert len(paragraphs) == 7  # 6 paragraphs of text and the table


def test_pdf_table_stays_together(report_pdf: Path) -> None:
    text = pdf_text(report_pdf).text
    assert "| Month | Ships | Fees |\n| --- | --- | --- |\n| June | 31 | 4,120 |\n" in text
    assert text.endswith("| August | 58 | 7,930 |")


def test_image_only_pages_are_reported_as_needing_ocr(tmp_path: Path, report_pdf: Path) -> None:
    from pypdf import PdfWriter

    folder = tmp_path / "docs"
    folder.mkdir()
    write_scanned_pdf(folder / "scan.pdf")
    mixed = PdfWriter()
    mixed.append(str(report_pdf))
    mixed.append(str(folder / "scan.pdf"))
    mixed.write(str(folder / "mixed.pdf"))
    report = prepare_corpus(folder, tmp_path / "out.jsonl")
    outcomes = {outcome.path: outcome for outcome in report.files}
    scan = outcomes["scan.pdf"]
    assert scan.reason == "needs_ocr"
    assert "images without a text layer" in scan.detail and "OCR" in scan.detail
    assert outcomes["mixed.pdf"].kept
    assert any("1 of 5 pages are images" in note and "(pages 5)" in note
               for note in outcomes["mixed.pdf"].notes)  # fmt: skip


def test_encrypted_pdfs(tmp_path: Path, report_pdf: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    write_aes_pdf(folder / "aes_open.pdf", report_pdf)  # AES-256, empty user password
    write_aes_pdf(folder / "locked.pdf", report_pdf, user_password="secret")
    report = prepare_corpus(folder, tmp_path / "out.jsonl")
    outcomes = {outcome.path: outcome for outcome in report.files}
    assert outcomes["aes_open.pdf"].kept
    assert outcomes["locked.pdf"].reason == "unreadable"
    assert "needs a password" in outcomes["locked.pdf"].detail
    assert "international ferries" in (tmp_path / "out.jsonl").read_text(encoding="utf-8")
    with pytest.raises(DocumentError, match="needs a password"):
        pdf_text(folder / "locked.pdf")


def test_html_keeps_main_content_only(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    for index in range(3):
        paragraphs = [prose(10 * index + part, 60) for part in range(3)]
        (folder / f"story{index}.html").write_text(site_page(f"Story {index}", paragraphs))
    (folder / "sitemap.html").write_text(sitemap_page(), encoding="utf-8")
    menu = "".join(f'<li><a href="/m/{index}">Menu entry {index}</a></li>' for index in range(150))
    mega_menu = site_page("Big menu", [prose(50, 80)]).replace(
        "<nav class", f"<nav><ul>{menu}</ul></nav><nav class"
    )
    (folder / "zz_mega_menu.html").write_text(mega_menu, encoding="utf-8")
    report = prepare_corpus(folder, tmp_path / "out.jsonl")
    sitemap = next(outcome for outcome in report.files if outcome.path == "sitemap.html")
    assert sitemap.reason == "link_page" and "40 links" in sitemap.detail
    assert report.files[-1].kept  # an article inside a 150-link menu is not a link page
    texts = corpus_texts(folder, tmp_path / "out.jsonl")
    story = texts["story1.html"]
    assert story.startswith("# Story 1\n\n") and prose(10, 60)[:40] in story
    for junk in ("cookies", "Home", "Popular posts", "Share on", "JavaScript", "Copyright",
                 "Privacy", "tracking", "font-family"):  # fmt: skip
        assert junk not in story, junk
    assert "See the harbour notes for more." in story  # a link reads as its text
    assert "](" not in story and "/notes/" not in story
    # The newsletter line inside every article is boilerplate shared by the site's pages.
    assert "newsletter" not in story
    assert report.files[1].boilerplate_lines == 1


def test_word_headings_lists_tables_links_and_footnotes_as_text(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    write_word(
        folder / "plans.docx", "Pier plans", [prose(5, 50)], ("the council site", "https://x.org/p"),
        footnote="Harbour statistics, 2025, table 4.",
    )  # fmt: skip
    text = corpus_texts(folder, tmp_path / "out.jsonl")["plans.docx"]
    assert text.startswith("# Pier plans\n\n")
    assert "* stone piers\n* wooden piers" in text
    assert "| Pier | Length |\n| --- | --- |\n| North | 120 m |" in text
    assert text.endswith(
        "The plans are on the council site\n\n[1] Harbour statistics, 2025, table 4."
    )
    assert "https://" not in text


def test_type_comes_from_content_not_name(tmp_path: Path, report_pdf: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "pdf_named.txt").write_bytes(report_pdf.read_bytes())
    (folder / "page_named.txt").write_text(site_page("Named text", [prose(3, 80)]))
    write_word(
        folder / "word_named.pdf", "Word inside", [prose(4, 60)], ("a link", "https://x.org")
    )
    (folder / "notes").write_text(prose(6, 80), encoding="utf-8")  # no extension: magika
    kinds = {path.name: detect_kind(path)[0] for path in folder.iterdir()}
    assert kinds == {
        "pdf_named.txt": "pdf",
        "page_named.txt": "html",
        "word_named.pdf": "docx",
        "notes": "text",
    }
    texts = corpus_texts(folder, tmp_path / "out.jsonl")
    assert (
        "international ferries" in texts["pdf_named.txt"] and "%PDF" not in texts["pdf_named.txt"]
    )
    assert "<" not in texts["page_named.txt"] and "tracking" not in texts["page_named.txt"]
    assert texts["word_named.pdf"].startswith("# Word inside")


def test_encodings_are_read_right(tmp_path: Path) -> None:
    western = "The naïve café owner served crème brûlée to the señora twice a day, said Zoë."
    central = "Příliš žluťoučký kůň úpěl ďábelské ódy. Zažloutlý kůň pěl ďábelské ódy na louce."
    assert decode_bytes(western.encode("cp1252"))[0] == western
    assert decode_bytes("A naïve approach was tried first.".encode("cp1252"))[0].startswith(
        "A naïve"
    )
    assert decode_bytes(central.encode("cp1250"))[0] == central
    utf16 = "Plain text saved as UTF-16 by a Windows tool, with no byte order mark."
    for codec in ("utf-16-le", "utf-16-be"):
        text, encoding = decode_bytes(utf16.encode(codec))
        assert (text, encoding.name, encoding.how) == (utf16, codec, "utf-16 pattern")
    assert detect_encoding("ñ".encode() * 10 + b"\xc3").name == "utf-8"  # a cut character
    assert repair_text("The naÃ¯ve cafÃ© owner") == "The naïve café owner"

    folder = tmp_path / "docs"
    folder.mkdir()
    body = f"{western} {prose(9, 40)}"
    (folder / "western.txt").write_bytes(body.encode("cp1252"))
    (folder / "wide.txt").write_bytes((prose(8, 60) + " " + western).encode("utf-16-le"))
    report = prepare_corpus(folder, tmp_path / "out.jsonl")
    texts = corpus_texts(folder, tmp_path / "out.jsonl")
    assert texts["western.txt"] == body
    assert texts["wide.txt"].endswith(western)
    notes = {outcome.path: outcome.notes for outcome in report.files}
    assert notes["western.txt"] == ["read as cp1252 (detected)"]
    assert notes["wide.txt"] == ["read as utf-16-le (utf-16 pattern)"]
