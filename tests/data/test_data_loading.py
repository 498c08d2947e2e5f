"""load_training_data: problems with lines, cleaning, on_bad_record, eval split, training type."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest

from studio.config import DataSettings
from studio.data import LoadedData, load_training_data
from studio.errors import DataError
from tests.support.files import write_jsonl


def qa(n: int) -> dict[str, str]:
    return {"instruction": f"question {n}", "input": "", "output": f"answer {n}"}


def load(path: Path, training_type: str = "sft", **settings: Any) -> LoadedData:
    return load_training_data(DataSettings(path=str(path), **settings), training_type)


def test_every_bad_record_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            qa(1),  # 1
            '{"instruction": "q", "output": }',  # 2 bad_json
            {"instruction": "q"},  # 3 missing_field
            {"instruction": "", "output": "a"},  # 4 empty_field
            {"instruction": "q", "output": ["a"]},  # 5 wrong_type
            {"question": "q", "answer": "a"},  # 6 unknown_format
            {"messages": [{"role": "user", "content": "q"}]},  # 7 unknown_format (other format)
            qa(1),  # 8 duplicate
            qa(2),  # 9
        ],
    )
    data = load(path)
    report = data.report
    assert [(p.line, p.reason) for p in report.problems] == [
        (2, "bad_json"),
        (3, "missing_field"),
        (4, "empty_field"),
        (5, "wrong_type"),
        (6, "unknown_format"),
        (7, "unknown_format"),
    ]
    assert "looks like messages" in report.problems[-1].detail
    assert [(p.line, p.reason) for p in report.cleaned_out] == [(8, "duplicate")]
    assert (report.read, report.kept, report.format, report.kind) == (
        9,
        2,
        "alpaca",
        "conversation",
    )
    assert report.read == report.kept + sum(report.dropped.values())
    assert report.dropped["unknown_format"] == 2
    assert [p.file for p in report.problems] == [str(path)] * 6
    assert len(data.train) == 2 and data.eval == []


def test_bad_role_in_sharegpt_file(tmp_path: Path) -> None:
    good = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
    bad = {"conversations": [{"from": "human", "value": "q"}, {"from": "robot", "value": "a"}]}
    report = load(write_jsonl(tmp_path / "d.jsonl", [good, bad])).report
    assert [(p.line, p.reason, p.field) for p in report.problems] == [
        (2, "bad_role", "conversations")
    ]


def test_on_bad_record_stop_lists_problems_with_file_and_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [qa(1), *(["{broken"] * 25)])
    with pytest.raises(DataError) as caught:
        load(path, on_bad_record="stop")
    message = caught.value.message
    assert message.startswith("25 malformed record(s)")
    assert f"{path}:2: bad_json" in message
    assert "... and 5 more" in message
    assert "on_bad_record" in (caught.value.advice or "")


def test_cleaning_does_not_stop_a_run(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [qa(1), qa(1)])
    assert load(path, on_bad_record="stop").report.dropped == {"duplicate": 1}


def test_too_short_and_duplicate_counts(tmp_path: Path) -> None:
    rows = [
        {"instruction": "hi", "output": "yo"},  # 4 chars
        {"instruction": "a longer question", "output": "a longer answer"},
        {"instruction": "a longer question", "output": "a longer answer"},
        {"instruction": "a longer question", "output": "a longer answer"},
        {"instruction": "hey", "output": "ok"},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    report = load(path, min_chars=6).report
    assert report.dropped == {"too_short": 2, "duplicate": 2}
    assert report.kept == 1
    assert [(p.line, p.reason) for p in report.cleaned_out] == [
        (1, "too_short"),
        (3, "duplicate"),
        (4, "duplicate"),
        (5, "too_short"),
    ]
    assert "line 2" in report.cleaned_out[1].detail
    assert load(path, min_chars=6, deduplicate=False).report.kept == 3


def test_system_prompt_does_not_count_towards_min_chars(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "q", "output": "a"}, qa(1)])
    data = load(path, min_chars=5, system_prompt="A long default system prompt.")
    assert data.report.dropped == {"too_short": 1}
    assert data.train[0]["messages"][0] == {
        "role": "system",
        "content": "A long default system prompt.",
    }


def test_identical_chosen_and_rejected_are_dropped(tmp_path: Path) -> None:
    rows = [
        {"prompt": "p", "chosen": "same", "rejected": "same"},
        {"prompt": "p", "chosen": "c", "rejected": "r"},
    ]
    data = load(write_jsonl(tmp_path / "d.jsonl", rows), "dpo")
    assert data.report.dropped == {"same_answers": 1}
    assert data.kind == "preference" and len(data.train) == 1


def test_no_usable_records_is_a_data_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "q"}, {"instruction": "r"}])
    with pytest.raises(DataError, match="no usable records") as caught:
        load(path)
    assert "missing_field 2" in caught.value.message
    assert ":1: missing_field" in caught.value.message


def test_unknown_format_for_the_whole_file(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError, match="question") as caught:
        load(path)
    assert "instruction" in (caught.value.advice or "")


def test_explicit_format_overrides_detection(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl", [{"text": "hello there", "instruction": "q", "output": "a"}]
    )
    assert load(path, "pretrain", format="text").train == [{"text": "hello there"}]
    assert load(path).report.format == "alpaca"


def test_majority_format_wins_and_others_are_reported(tmp_path: Path) -> None:
    rows = [{"text": "only one text"}, qa(1), qa(2)]
    report = load(write_jsonl(tmp_path / "d.jsonl", rows)).report
    assert report.format == "alpaca"
    assert [(p.line, p.reason) for p in report.problems] == [(1, "unknown_format")]


# ---------------------------------------------------------------- eval split


def test_eval_fraction_is_deterministic_and_sized(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [qa(n) for n in range(20)])
    first = load_training_data(DataSettings(path=str(path), eval_fraction=0.25), "sft", seed=1)
    again = load_training_data(DataSettings(path=str(path), eval_fraction=0.25), "sft", seed=1)
    other = load_training_data(DataSettings(path=str(path), eval_fraction=0.25), "sft", seed=2)
    assert (len(first.train), len(first.eval)) == (15, 5)
    assert first.eval == again.eval and first.train == again.train
    assert first.eval != other.eval
    assert not [r for r in first.eval if r in first.train]
    assert any("held out 5" in note for note in first.report.notes)


@pytest.mark.parametrize(("count", "expected_eval"), [(1, 0), (2, 1), (3, 1)])
def test_eval_fraction_holds_out_at_least_one(
    tmp_path: Path, count: int, expected_eval: int
) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [qa(n) for n in range(count)])
    data = load(path, eval_fraction=0.01)
    assert len(data.eval) == expected_eval
    assert len(data.train) == count - expected_eval


def test_eval_path_is_read_and_validated_the_same_way(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [qa(n) for n in range(4)])
    evaluation = write_jsonl(tmp_path / "eval.jsonl", [qa(10), "{bad", qa(11)])
    data = load(train, eval_path=str(evaluation), eval_fraction=0.2)
    assert len(data.train) == 4 and len(data.eval) == 2
    assert data.eval_report is not None and data.eval_report.dropped == {"bad_json": 1}
    assert any("eval_fraction is not used" in note for note in data.report.notes)


def test_eval_path_of_another_kind_is_refused(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [qa(1)])
    evaluation = write_jsonl(tmp_path / "eval.jsonl", [{"text": "t"}])
    with pytest.raises(DataError):
        load(train, eval_path=str(evaluation))


def test_relative_paths_use_base_dir(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d.jsonl", [qa(1)])
    data = load_training_data(DataSettings(path="d.jsonl"), "sft", base_dir=tmp_path)
    assert data.report.path == "d.jsonl" and len(data.train) == 1


# ---------------------------------------------------------------- training type fit


def test_preference_data_for_sft_becomes_prompt_plus_chosen(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}])
    data = load(path, "sft")
    assert data.kind == "conversation"
    assert data.train == [
        {"messages": [{"role": "user", "content": "p"}, {"role": "assistant", "content": "c"}]}
    ]
    assert any("preference data for sft" in note for note in data.report.notes)


@pytest.mark.parametrize("training_type", ["dpo", "orpo"])
def test_preference_training_needs_preference_data(tmp_path: Path, training_type: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [qa(1)])
    with pytest.raises(DataError, match="needs preference pairs") as caught:
        load(path, training_type)
    assert "chosen" in (caught.value.advice or "")


def test_pretrain_refuses_conversations(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [qa(1)])
    with pytest.raises(DataError, match="pretrain needs raw text") as caught:
        load(path, "pretrain")
    assert "sft" in (caught.value.advice or "")


def test_sft_refuses_raw_text(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_text("Some prose.\n", encoding="utf-8")
    with pytest.raises(DataError, match="sft needs conversation") as caught:
        load(path, "sft")
    assert "pretrain" in (caught.value.advice or "")
    assert load(path, "pretrain").train == [{"text": "Some prose."}]


def test_text_file_with_structured_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_text("Some prose.\n", encoding="utf-8")
    with pytest.raises(DataError, match="plain text"):
        load(path, "pretrain", format="alpaca")


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\x01\x02",
        b"[1, 2, 3]",
        b'{"a": 1}',
        b"null",
        b'"just a string"',
        b'[{"instruction": 1}, "x", null, [], {"output": {}}]',
        b"[[[[[[[[[[]]]]]]]]]]",
    ],
)
def test_malformed_input_never_gives_a_traceback(tmp_path: Path, content: bytes) -> None:
    for suffix in (".json", ".jsonl", ".csv", ".txt"):
        path = tmp_path / f"d{suffix}"
        path.write_bytes(content)
        with contextlib.suppress(DataError):
            load(path)


def test_report_summary_and_dict(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [qa(1), "{bad"])
    report = load(path).report
    summary = report.summary()
    assert "format: alpaca" in summary and "read 2, kept 1, dropped 1 (bad_json 1)" in summary
    data = json.loads(json.dumps(report.to_dict()))
    assert data["dropped"] == {"bad_json": 1} and data["problems"][0]["line"] == 2


def test_long_csv_cells_are_read(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text\n" + "x" * 200_000 + "\n", encoding="utf-8")
    assert len(load(path, "pretrain").train[0]["text"]) == 200_000
