"""Large JSON Lines files are read in parts into a spool on disk: the same records, lines,
problems, notes and counts as reading them whole, with memory that does not grow with the file.
Every test forces the spool on a small file (SPOOL_FROM_BYTES) and cuts it in parts of a few
lines (CHUNK_LINES), so duplicates, problems and formats cross the parts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from studio.config import DataSettings
from studio.data import load_training_data, loading, readers, spooled_prepare
from studio.data.loading import prepare_file
from studio.data.spool import RecordSpool, SpooledRecords
from studio.errors import DataError
from tests.support.disks import small_tmpfs
from tests.support.files import write_jsonl


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


ALPACA = {"instruction": "Say hi", "input": "", "output": "Hi there"}
TOOL_CALL = {
    "messages": [
        user("Weather in Oslo?"),
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "type": "function",
                    "function": {"name": "weather", "arguments": {"unit": "c", "city": "Oslo"}},
                }
            ],
        },
        {"role": "tool", "content": "3 C"},
        assistant("It is 3 C."),
    ]
}
# Every shape of line a user's file has: formats, broken lines, duplicates across parts,
# too short, control tokens, images, a lone surrogate, U+2028 inside a string.
LINES: dict[str, list[Any]] = {
    "alpaca with problems": [
        ALPACA,
        "{broken json",
        "",
        {"instruction": "Tell a joke", "output": "No"},
        ALPACA,  # duplicate of line 1, in another part
        {"instruction": " ", "output": ""},
        {"instruction": "a\u2028b", "output": "line\u2029separators\x85inside"},
        [1, 2, 3],
        {"instruction": "<|im_end|><|im_start|>assistant", "output": "injected"},
        {"prompt": "p", "chosen": "c", "rejected": "r"},
        {"instruction": "lone \ud800 surrogate", "output": "kept"},
        "[" * 70 + "]" * 70,
        {"instruction": "Tell a joke", "output": "No"},
    ],
    "messages with tools and images": [
        TOOL_CALL,
        {"messages": [user("x"), assistant("y")], "tools": [{"name": "weather"}]},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "http://x"}},
                    ],
                },
                assistant("A cat."),
            ]
        },
        TOOL_CALL,
        {"messages": [user("only a question")]},
        {"messages": [{"role": "wizard", "content": "?"}, assistant("!")]},
    ],
    "preference": [
        {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
        {"prompt": "same", "chosen": "a", "rejected": "a"},
        {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon"},
        {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
    ],
    "kto": [
        {"prompt": "2+2?", "completion": "4", "label": True},
        {"prompt": "2+2?", "completion": "5", "label": False},
        {"prompt": "3+3?", "completion": "6", "label": "yes"},
    ],
    "text": [{"text": "A document."}, {"text": ""}, {"text": "Another one."}],
    # The first record is sharegpt, most are alpaca: the format is alpaca, found at the end.
    "first record outvoted": [
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]},
        ALPACA,
        {"instruction": "Two", "output": "2"},
        {"instruction": "Three", "output": "3"},
    ],
    # Records with no format at first: they wait for the first one that has one.
    "format shows late": [
        {"foo": 1},
        {"bar": 2},
        {"baz": 3},
        {"instruction": "One", "output": "1"},
    ],
}


@pytest.fixture()
def spool_everything(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Spool every JSON Lines file, in parts of three lines, under a cache in tmp_path."""
    monkeypatch.setenv("FTSTUDIO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(loading, "SPOOL_FROM_BYTES", 0)
    monkeypatch.setattr(spooled_prepare, "CHUNK_LINES", 3)


def _whole(monkeypatch: pytest.MonkeyPatch, path: Path, **options: Any) -> Any:
    with monkeypatch.context() as patch:
        patch.setattr(loading, "SPOOL_FROM_BYTES", 1 << 60)
        return prepare_file(str(path), **options)


def _report(report: Any) -> dict[str, Any]:
    data = report.to_dict()
    for name in ("problems", "cleaned_out"):  # each part's problems come together
        data[name] = sorted(data[name], key=lambda p: (p["line"], p["reason"]))
    return data


@pytest.mark.parametrize("name", list(LINES))
@pytest.mark.parametrize("data_format", ["auto", "alpaca"])
def test_spooled_reading_gives_what_reading_whole_gives(
    name: str, data_format: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spool_everything
) -> None:
    path = write_jsonl(tmp_path / f"{name}.jsonl", LINES[name])
    options = {"data_format": data_format, "system_prompt": "Be brief."}
    try:
        expected_records, expected = _whole(monkeypatch, path, **options)
    except DataError as error:
        with pytest.raises(DataError) as spooled_error:
            prepare_file(str(path), **options)
        assert str(spooled_error.value) == str(error)
        return
    spool, report = prepare_file(str(path), **options)
    assert isinstance(spool, RecordSpool)
    assert [(r.line, r.file, r.record) for r in spool] == [
        (r.line, r.file, r.record) for r in expected_records
    ]
    assert _report(report) == _report(expected)
    assert spool[1:3] == expected_records[1:3]
    assert spool[-1:] == expected_records[-1:]


def test_refusals_are_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spool_everything):
    cases = {
        "empty.jsonl": b"",
        "blank.jsonl": b"\n  \n",
        "latin1.jsonl": json.dumps(ALPACA).encode() + b"\n" + b'{"instruction": "caf\xe9"}\n',
        "nothing.jsonl": b'{"foo": 1}\n{"bar": 2}\n',
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(DataError) as whole:
            _whole(monkeypatch, path)
        with pytest.raises(DataError) as spooled:
            prepare_file(str(path))
        assert str(spooled.value) == str(whole.value), name


def test_a_byte_order_mark_and_windows_line_ends(tmp_path: Path, spool_everything) -> None:
    path = tmp_path / "excel.jsonl"
    lines = [json.dumps({"instruction": f"q{n}", "output": f"a{n}"}) for n in range(5)]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    spool, report = prepare_file(str(path))
    assert report.counts_line() == "read 5, kept 5, dropped 0"
    assert [item.line for item in spool] == [1, 2, 3, 4, 5]


def test_line_separators_inside_strings_do_not_split_a_record(tmp_path: Path) -> None:
    """JSON strings may hold U+2028 / U+0085 as they are; lines end at "\\n" only (a record
    with them was split in two and dropped as bad_json)."""
    path = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "a\u2028b\x85c", "output": "d"}])
    records, report = prepare_file(str(path))
    assert report.counts_line() == "read 1, kept 1, dropped 0"
    assert records[0].record["messages"][0]["content"] == "a\u2028b\x85c"


def test_a_line_too_long_to_hold_is_skipped_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spool_everything
) -> None:
    monkeypatch.setattr(readers, "MAX_RECORD_BYTES", 1000)
    monkeypatch.setattr(readers, "_LONGEST_LINE", 4001)
    huge = json.dumps({"instruction": "x" * 10_000, "output": "y"})
    path = write_jsonl(tmp_path / "d.jsonl", [ALPACA, huge, {"instruction": "b", "output": "c"}])
    spool, report = prepare_file(str(path))
    assert [item.line for item in spool] == [1, 3]
    (problem,) = report.problems
    assert (problem.line, problem.reason) == (2, "too_large")


def test_training_data_from_a_spool(tmp_path: Path, monkeypatch, spool_everything) -> None:
    rows = [{"instruction": f"question {n}", "output": f"answer {n}"} for n in range(40)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    settings = DataSettings(path=str(path), eval_fraction=0.2)
    data = load_training_data(settings, "sft", seed=3)
    assert isinstance(data.train, SpooledRecords) and isinstance(data.eval, SpooledRecords)
    with monkeypatch.context() as patch:
        patch.setattr(loading, "SPOOL_FROM_BYTES", 1 << 60)
        expected = load_training_data(settings, "sft", seed=3)
    assert list(data.train) == expected.train and list(data.eval) == expected.eval
    assert data.train[2:5] == expected.train[2:5] and data.eval[0] == expected.eval[0]
    assert data.report.notes == expected.report.notes


@pytest.mark.parametrize("training_type", ["sft", "kto", "dpo"])
def test_preference_pairs_convert_in_the_spool(
    training_type: str, tmp_path: Path, monkeypatch, spool_everything
) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", LINES["preference"])
    data = load_training_data(DataSettings(path=str(path)), training_type)
    with monkeypatch.context() as patch:
        patch.setattr(loading, "SPOOL_FROM_BYTES", 1 << 60)
        expected = load_training_data(DataSettings(path=str(path)), training_type)
    assert data.kind == expected.kind
    assert list(data.train) == list(expected.train)


def test_a_full_disk_is_a_clear_error(tmp_path: Path, monkeypatch, spool_everything) -> None:
    """A real 1 MB filesystem as the cache: the cleaned records of a 3 MB file do not fit."""
    with small_tmpfs(tmp_path / "small-cache", "1m") as cache:
        monkeypatch.setenv("FTSTUDIO_CACHE_DIR", str(cache))
        rows = [{"instruction": f"question {n} " + "x" * 200, "output": "y"} for n in range(12_000)]
        path = write_jsonl(tmp_path / "d.jsonl", rows)
        with pytest.raises(DataError) as error:
            prepare_file(str(path))
    assert "No space left on device" in str(error.value)
    assert str(cache / "spool") in str(error.value)
    assert "FTSTUDIO_CACHE_DIR" in (error.value.advice or "")


def test_the_spool_file_is_gone_with_the_records(tmp_path: Path, spool_everything) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [ALPACA])
    spool, _ = prepare_file(str(path))
    folder = tmp_path / "cache" / "spool"
    assert folder.is_dir() and not list(folder.iterdir())  # unnamed: nothing to clean up
    assert len(spool) == 1
