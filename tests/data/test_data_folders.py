"""Datasets that are folders or hub datasets (tested offline on folders written here), and
several datasets mixed by weight."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.config import DataSettings, config_from_dict
from studio.data import load_training_data
from studio.data.folders import read_hub_dataset
from studio.data.loading import prepare_file
from studio.data.mixing import mix_counts
from studio.errors import ConfigError, DataError


def alpaca_rows(prefix: str, count: int) -> list[dict[str, str]]:
    return [
        {"instruction": f"{prefix} question {n}", "output": f"answer {n}"} for n in range(count)
    ]


def write_parquet(path: Path, rows: list[dict[str, str]]) -> None:
    import pyarrow as pa
    from pyarrow import parquet

    path.parent.mkdir(parents=True, exist_ok=True)
    parquet.write_table(pa.Table.from_pylist(rows), path)


def test_save_to_disk_folder_with_splits(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    folder = tmp_path / "saved"
    DatasetDict(
        {
            "train": Dataset.from_list(alpaca_rows("train", 5)),
            "test": Dataset.from_list(alpaca_rows("test", 2)),
        }
    ).save_to_disk(str(folder))
    records, report = prepare_file(str(folder))
    assert (report.format, report.read, report.kept) == ("alpaca", 5, 5)
    assert records[0].record["messages"][0]["content"] == "train question 0"
    records, report = prepare_file(str(folder), split="test")
    assert report.kept == 2
    with pytest.raises(DataError) as caught:
        prepare_file(str(folder), split="validation")
    assert "has no split 'validation'; it has train, test" in caught.value.message

    single = tmp_path / "single"
    Dataset.from_list(alpaca_rows("one", 3)).save_to_disk(str(single))
    assert prepare_file(str(single))[1].kept == 3


def test_shard_folder_reads_the_split_and_keeps_file_lines(tmp_path: Path) -> None:
    folder = tmp_path / "hub_layout"
    write_parquet(folder / "data" / "train-00000-of-00002.parquet", alpaca_rows("a", 3))
    (folder / "data" / "train-00001-of-00002.jsonl").write_text(
        json.dumps({"instruction": "b question", "output": "b answer"}) + "\n{broken\n",
        encoding="utf-8",
    )
    write_parquet(folder / "data" / "test-00000-of-00001.parquet", alpaca_rows("t", 4))
    (folder / "README.md").write_text("# a dataset card, not data\n", encoding="utf-8")
    _, report = prepare_file(str(folder))
    assert (report.format, report.read, report.kept) == ("alpaca", 5, 4)
    assert report.problem_lines() == [
        f"{folder}/data/train-00001-of-00002.jsonl:2: bad_json: "
        "Expecting property name enclosed in double quotes (column 2)"
    ]
    assert prepare_file(str(folder), split="test")[1].kept == 4
    with pytest.raises(DataError, match="no files for split 'dev'; it has test, train"):
        prepare_file(str(folder), split="dev")
    assert prepare_file(str(folder), max_records=2)[1].kept == 2


def test_hub_reader_streams_a_local_dataset_offline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    folder = tmp_path / "owner_name"
    write_parquet(folder / "train.parquet", alpaca_rows("hub", 50))
    streamed = read_hub_dataset(str(folder), "train", streaming=True, max_records=7)
    assert (streamed.file_type, len(streamed.records)) == ("hub", 7)
    assert streamed.records[6].line == 7
    assert streamed.records[0].value["instruction"] == "hub question 0"
    whole = read_hub_dataset(str(folder), "train")
    assert len(whole.records) == 50
    with pytest.raises(DataError, match="cannot load hub dataset"):
        read_hub_dataset(str(folder), "nosuchsplit")


def test_streaming_needs_max_records() -> None:
    with pytest.raises(ConfigError, match="max_records"):
        config_from_dict({"data": {"path": "owner/name", "streaming": True}})


def test_mix_counts_follow_the_weights() -> None:
    assert mix_counts([100, 100], [1, 1]) == [100, 100]
    assert mix_counts([100, 30], [1, 1]) == [30, 30]
    assert mix_counts([100, 100], [3, 1]) == [100, 33]
    assert mix_counts([40, 1000], [1, 4]) == [40, 160]


def test_two_datasets_mixed_by_weight(tmp_path: Path) -> None:
    first = tmp_path / "a.jsonl"
    first.write_text("\n".join(json.dumps(r) for r in alpaca_rows("a", 30)), encoding="utf-8")
    second = tmp_path / "b.jsonl"
    second.write_text(
        "\n".join(
            json.dumps({"messages": [{"role": "user", "content": f"b {n}"},
                                     {"role": "assistant", "content": "ok"}]})
            for n in range(40)
        ),
        encoding="utf-8",
    )  # fmt: skip
    settings = DataSettings(path=str(first), weight=1, mix=[f"{second}:2"])
    data = load_training_data(settings, "sft", seed=1)
    assert len(data.train) == 60  # 20 of a, 40 of b: b gets two thirds
    from_b = sum(1 for r in data.train if r["messages"][0]["content"].startswith("b "))
    assert from_b == 40
    assert [(row["path"], row["used"], row["available"]) for row in data.report.mix] == [
        (str(first), 20, 30),
        (str(second), 40, 40),
    ]
    assert data.report.mix[1]["format"] == "messages"
    assert f"mix: {second} (messages, weight 2): 40 of 40 usable records, 67% of training" in (
        data.report.summary()
    )
    assert data.report.to_dict()["mix"][0]["share"] == pytest.approx(1 / 3, abs=1e-3)
    # The shorthand survives the YAML / form round trip.
    config = config_from_dict({"data": {"path": str(first), "mix": [f"{second}:2"]}})
    assert config.model_dump(mode="json")["data"]["mix"] == [f"{second}:2"]
    assert config_from_dict(config.model_dump(mode="json")).data.mix == config.data.mix


def test_mixing_different_kinds_is_refused(tmp_path: Path) -> None:
    first = tmp_path / "a.jsonl"
    first.write_text(json.dumps(alpaca_rows("a", 1)[0]), encoding="utf-8")
    text = tmp_path / "t.txt"
    text.write_text("raw text\n", encoding="utf-8")
    settings = DataSettings(path=str(first), mix=[{"path": str(text), "format": "text"}])
    with pytest.raises(DataError):
        load_training_data(settings, "sft")
