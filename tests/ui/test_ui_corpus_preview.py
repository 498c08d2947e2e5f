"""The Config screen's Dataset tab previews what `ftstudio data prepare` would do with a
folder of documents: per file, per filter, kept text and the command that prepares it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widgets import Input

from studio.ui.app import make_app
from studio.ui.data.corpus_preview import build_corpus_preview
from studio.ui.widgets.config_form import editor_id
from tests.support.sample_documents import prose, site_page
from tests.support.ui import isolated_services, settle


def write_documents(folder: Path) -> None:
    """Three pages of one site (cookie banner, menu, shared newsletter line) and a text file
    with its exact copy."""
    folder.mkdir(parents=True)
    for index in range(3):
        paragraphs = [prose(10 + index * 3 + part, 80) for part in range(3)]
        page = site_page(f"Harbour news {index}", paragraphs)
        (folder / f"page{index}.html").write_text(page, encoding="utf-8")
    notes = prose(50, 300)
    (folder / "notes.txt").write_text(notes, encoding="utf-8")
    (folder / "notes copy.txt").write_text(notes, encoding="utf-8")


@pytest.mark.slow
def test_dataset_tab_previews_preparing_a_folder_of_documents(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    write_documents(workdir / "docs")

    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path, workdir=workdir))
        async with app.run_test(size=(120, 50)) as pilot:
            await settle(pilot)
            await pilot.press("2")
            await settle(pilot)
            pilot.app.screen.query_one(f"#{editor_id('data.path')}", Input).value = "docs"
            await settle(pilot)
            assert app.studio.config.data.path == "docs"
            summary = str(app.screen.query_one("#dataset-summary").render())
            assert "read 5 files under docs" in summary
            assert "notes.txt: duplicate: same text as notes copy.txt" in summary
            assert "removed 3 boilerplate lines shared by at least 3 documents" in summary
            kept = summary[summary.index("Kept text, e.g.:") :]
            assert "Harbour news" in kept and "cookies" not in kept.lower()
            assert "ftstudio data prepare docs -o docs.jsonl" in summary
            assert not list(workdir.glob("**/*.jsonl"))  # a preview writes no corpus

    asyncio.run(scenario())


def test_preview_is_bounded_and_says_so(tmp_path: Path) -> None:
    write_documents(tmp_path / "docs")
    preview = build_corpus_preview("docs", tmp_path / "docs", max_files=2)
    assert "read 2 files under docs (stopped after the first 2 of 5 files)" in preview.report_text
