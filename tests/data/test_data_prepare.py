"""`ftstudio data prepare DIR -o corpus.jsonl`: documents of every type into a corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.data.corpus.settings import PrepareSettings, load_prepare_settings
from studio.data.documents import decode_text
from studio.data.prepare import prepare_corpus
from studio.data.text_quality import is_garbled, measure_garbling
from tests.conftest import REPO
from tests.support.cli import studio_process
from tests.support.sample_documents import prose, write_mixed_folder


@pytest.mark.slow
def test_prepare_command_counts_every_reason(tmp_path: Path) -> None:
    expected = write_mixed_folder(tmp_path / "docs")
    corpus = tmp_path / "corpus.jsonl"
    report_file = tmp_path / "report.json"
    result = studio_process(
        "data", "prepare", str(tmp_path / "docs"), "-o", str(corpus), "--report", str(report_file)
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    report = json.loads(report_file.read_text())
    outcomes = {
        item["path"]: "kept" if item["kept"] else item["reason"] for item in report["files"]
    }
    assert outcomes == expected  # the hidden file is skipped, not counted
    assert report["dropped_by_reason"] == {
        "unsupported": 1,
        "unreadable": 2,
        "empty": 2,
        "duplicate": 1,
        "garbled": 1,
        "too_short": 1,
    }
    assert (
        "dropped 8 files: unsupported 1, unreadable 2, empty 2, duplicate 1, garbled 1, "
        "too_short 1" in output
    )
    assert "zz_copy_of_notes.txt: duplicate: same text as notes.txt" in output
    assert "broken.pdf: unreadable: cannot read PDF: PDFSyntaxError" in output

    records = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines()]
    texts = {record["source"]: record["text"] for record in records}
    assert set(texts) == {name for name, outcome in expected.items() if outcome == "kept"}
    assert texts["page.html"].startswith("# Mills\n\nThe **mill** wheel")
    assert "<" not in texts["page.html"]
    assert "hidden" not in texts["page.html"]  # scripts are not text
    assert "four hundred and twelve sailings" in texts["report.pdf"]
    assert "rusted through" in texts["letter.docx"]
    assert "def high_tide" in texts["code/tides.py"]
    assert "Café crème" in texts["latin1.txt"]  # cp1252 file decoded, not garbled


def test_min_chars_is_configurable(tmp_path: Path) -> None:
    write_mixed_folder(tmp_path / "docs")
    report = prepare_corpus(tmp_path / "docs", tmp_path / "out.jsonl", min_chars=10, min_words=0)
    assert "too_short" not in report.dropped_by_reason()
    assert any(outcome.path == "short.txt" and outcome.kept for outcome in report.files)
    report = prepare_corpus(tmp_path / "docs", tmp_path / "out.jsonl", min_chars=190)
    assert report.dropped_by_reason()["too_short"] >= 6


@pytest.mark.slow
def test_nothing_kept_is_an_error_without_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "tiny.txt").write_text("hi", encoding="utf-8")
    result = studio_process("data", "prepare", str(folder), "-o", str(tmp_path / "out.jsonl"))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "tiny.txt: too_short" in result.stdout
    assert not (tmp_path / "out.jsonl").exists()
    missing = studio_process(
        "data", "prepare", str(tmp_path / "nope"), "-o", str(tmp_path / "o.jsonl")
    )
    assert missing.returncode == 2 and "folder not found" in missing.stderr


def test_garbled_share_is_measured() -> None:
    prose = "A plain sentence in English.\tWith a tab and a newline.\n"
    assert measure_garbling(prose).share == 0.0
    assert measure_garbling("中文的句子，没有问题。").share == 0.0
    assert not is_garbled("def f():\n    return {'a': [1, 2]}  # code is fine\n")
    broken = "text \ufffd\ufffd with \x00\x01 bytes \ue000"
    garbling = measure_garbling(broken)
    assert garbling.bad_characters == 5
    assert is_garbled(broken)
    assert is_garbled(decode_text(bytes(range(256)) * 4))


@pytest.mark.slow
def test_report_shows_samples_per_filter_and_settings_come_from_yaml(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "story.txt").write_text(prose(1, 120), encoding="utf-8")
    (folder / "menu.txt").write_text("\n".join(["Home", "News", "About us"] * 10), "utf-8")
    (folder / "ys.txt").write_text(" ".join(["y"] * 100), encoding="utf-8")
    settings = tmp_path / "prepare.yaml"
    settings.write_text("min_mean_words_per_line: 0\nmax_record_chars: 600\n", encoding="utf-8")
    report_file = tmp_path / "report.json"
    result = studio_process(
        "data", "prepare", str(folder), "-o", str(tmp_path / "c.jsonl"),
        "--settings", str(settings), "--report", str(report_file),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_file.read_text())
    assert report["settings"]["max_record_chars"] == 600
    # With the words-per-line filter off, the menu falls to the repetition filter instead.
    assert report["records_dropped_by_filter"] == {"repetition": 1, "word_length": 1}
    dropped = report["dropped_samples"]
    assert dropped["repetition"][0]["source"] == "menu.txt"
    assert "repeat another line" in dropped["repetition"][0]["detail"]
    assert dropped["word_length"][0]["text"].startswith("y y y")
    assert report["kept_samples"][0]["source"] == "story.txt"
    story = next(item for item in report["files"] if item["path"] == "story.txt")
    assert story["kept"] and story["records"] >= 2  # 120 words > 600 characters: split
    assert "records dropped by filter:" in result.stdout
    assert "repetition" in result.stdout and "e.g. menu.txt" in result.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text("near_duplicate_threshold: 3\n", encoding="utf-8")
    result = studio_process("data", "prepare", str(folder), "-o", str(tmp_path / "c.jsonl"),
                     "--settings", str(bad))  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "near_duplicate_threshold" in result.stderr and "Traceback" not in result.stderr


def test_sample_settings_file_holds_the_defaults() -> None:
    assert load_prepare_settings(REPO / "sample_data" / "prepare.yaml") == PrepareSettings()
