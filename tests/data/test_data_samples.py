"""The shipped sample datasets load with the expected kinds and counts, and no bad records."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.config import DataSettings
from studio.data import load_training_data

SAMPLES = Path(__file__).resolve().parents[2] / "sample_data"


@pytest.mark.parametrize(
    ("name", "training_type", "data_format", "kind", "count"),
    [
        ("alpaca_en.jsonl", "sft", "alpaca", "conversation", 40),
        ("alpaca_zh.json", "sft", "alpaca", "conversation", 30),
        ("alpaca_en.csv", "sft", "alpaca", "conversation", 15),
        ("alpaca_en.parquet", "sft", "alpaca", "conversation", 15),
        ("sharegpt_en.json", "sft", "sharegpt", "conversation", 15),
        ("messages_en.jsonl", "sft", "messages", "conversation", 20),
        ("preference_en.jsonl", "dpo", "preference", "preference", 30),
        ("preference_messages_zh.jsonl", "orpo", "preference", "preference", 15),
        ("pretrain_en.txt", "pretrain", "text", "text", 16),
        ("kto_en.jsonl", "kto", "kto", "kto", 28),
        ("tools_en.jsonl", "sft", "sharegpt", "conversation", 6),
    ],
)
def test_sample_loads_cleanly(
    name: str, training_type: str, data_format: str, kind: str, count: int
) -> None:
    settings = DataSettings(path=str(SAMPLES / name), on_bad_record="stop")
    data = load_training_data(settings, training_type)
    assert (data.report.format, data.kind, len(data.train)) == (data_format, kind, count)
    assert data.report.dropped == {}


def test_quickstart_sample_has_the_one_heart_example() -> None:
    data = load_training_data(DataSettings(path=str(SAMPLES / "alpaca_en.jsonl")), "sft")
    first = data.train[0]["messages"]
    assert "one heart" in first[0]["content"]
    assert first[-1]["content"].startswith("Humans have only one heart")


def test_chinese_sample_has_the_one_heart_example() -> None:
    data = load_training_data(DataSettings(path=str(SAMPLES / "alpaca_zh.json")), "sft")
    assert data.train[0]["messages"][0]["content"] == "我只剩一颗心脏了，还能活吗？"


def test_sample_questions_are_distinct_and_answers_short() -> None:
    data = load_training_data(DataSettings(path=str(SAMPLES / "alpaca_en.jsonl")), "sft")
    questions = [record["messages"][0]["content"] for record in data.train]
    assert len(set(questions)) == len(questions)
    assert all(len(record["messages"][-1]["content"]) < 200 for record in data.train)


def test_csv_and_parquet_match_the_jsonl() -> None:
    def records(name: str) -> list[dict[str, object]]:
        return load_training_data(DataSettings(path=str(SAMPLES / name)), "sft").train

    assert (
        records("alpaca_en.csv") == records("alpaca_en.parquet") == records("alpaca_en.jsonl")[:15]
    )
