"""Which files the Config screen offers as datasets and run configs."""

from __future__ import annotations

from pathlib import Path

from studio.ui.data.dataset_files import find_configs, find_datasets


def test_only_data_and_configs_are_offered(tmp_path: Path) -> None:
    for name in (
        "sample_data/alpaca.jsonl",
        "my.csv",
        "configs/run.yaml",
        "bench/results/cpu.json",  # benchmark records are not datasets
        "runs/demo/metrics.jsonl",
        "studio/data.json",
        "tests/data/fixture.jsonl",
        "docs/trace.jsonl",
        "themes/dark.yaml",
        ".venv/lib/x.json",
        "requirements.txt",
        "ftstudio.egg-info/SOURCES.txt",  # what pip install -e leaves in a checkout
        "build/lib/data.json",
    ):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    assert find_datasets(tmp_path) == ["my.csv", "sample_data/alpaca.jsonl"]
    assert find_configs(tmp_path) == ["configs/run.yaml"]
