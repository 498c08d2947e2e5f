"""`ftstudio data check`: the printed report, exit codes, and staying light (no torch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from studio.data import check_main
from tests.support.files import write_jsonl

REPO = Path(__file__).resolve().parents[2]
BAD_SAMPLE = REPO / "sample_data" / "bad" / "alpaca_with_errors.jsonl"


def test_usable_file_exits_zero_and_shows_format_kind_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [{"instruction": "q", "output": "a"}, "{bad", {"instruction": "q", "output": "a"}],
    )
    assert check_main(str(path)) == 0
    out = capsys.readouterr().out
    assert "format: alpaca" in out
    assert "kind:   conversation" in out
    assert "read 3, kept 1, dropped 2 (bad_json 1, duplicate 1)" in out
    assert f"{path}:2: bad_json: " in out
    assert f"{path}:3: duplicate: same as the record at line 1" in out
    assert "ok: 1 records can be used" in out


def test_unusable_file_exits_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "q"}])
    assert check_main(str(path)) == 1
    out = capsys.readouterr().out
    assert f"{path}:1: missing_field: 'output' is missing" in out
    assert "error: no usable records" in out


def test_missing_file_exits_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_main(str(tmp_path / "missing.jsonl")) == 1
    assert "error: dataset file not found" in capsys.readouterr().out


def test_training_type_mismatch_exits_one_with_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "q", "output": "a"}])
    assert check_main(str(path), training_type="dpo") == 1
    out = capsys.readouterr().out
    assert "needs preference pairs" in out and "hint:" in out
    assert check_main(str(path), training_type="sft") == 0
    assert "can be used for sft" in capsys.readouterr().out


def test_printing_is_capped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "ok"}, *(["{bad"] * 250)])
    assert check_main(str(path)) == 0
    out = capsys.readouterr().out
    assert out.count(": bad_json: ") == 200
    assert "... and 50 more" in out


def test_options_are_applied(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "hello"}, {"text": "hello"}, {"text": "x"}])
    assert check_main(str(path), min_chars=2, deduplicate=False) == 0
    out = capsys.readouterr().out
    assert "read 3, kept 2, dropped 1 (too_short 1)" in out


def test_bad_sample_shows_every_kind_of_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_main(str(BAD_SAMPLE), min_chars=10) == 0
    out = capsys.readouterr().out
    for reason in (
        "bad_json",
        "missing_field",
        "empty_field",
        "wrong_type",
        "unknown_format",
        "duplicate",
        "too_short",
    ):
        assert f": {reason}: " in out, reason
    assert f"{BAD_SAMPLE}:2: bad_json" in out


def test_data_check_imports_neither_torch_nor_datasets() -> None:
    code = (
        "import sys; from studio.data import check_main; "
        f"check_main({str(REPO / 'sample_data' / 'alpaca_en.jsonl')!r}); "
        f"check_main({str(REPO / 'sample_data' / 'alpaca_en.csv')!r}); "
        "heavy = [m for m in ('torch', 'datasets', 'transformers', 'pyarrow') "
        "if m in sys.modules]; "
        "print('HEAVY', heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert "HEAVY []" in result.stdout
