"""Short training runs of the built-in tiny model, in-process, for the training-type tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio.config import config_from_dict
from studio.engine import EventBus
from studio.engine.session import TrainingSession
from tests.conftest import REPO


def train_tiny(
    tmp_path: Path, settings: dict[str, Any], overrides: list[str] | None = None
) -> tuple[Any, Path, list[Any]]:
    """(RunFinished, run directory, every event) of a run with `settings` on the tiny model."""
    base = {
        "model": {"source": "tiny-demo"},
        "method": {"name": "lora", "rank": 8, "alpha": 16, "dropout": 0.0},
        "output": {"runs_dir": str(tmp_path / "runs")},
    }
    for key, value in settings.items():
        merge = isinstance(value, dict) and key in base and key != "method"
        base[key] = {**base[key], **value} if merge else value
    config = config_from_dict(base, overrides)
    bus = EventBus()
    events: list[Any] = []
    bus.subscribe(events.append)
    result = TrainingSession(config, bus, base_dir=REPO, telemetry_interval=None).run()
    return result, Path(result.run_dir), events


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    with (run_dir / "metrics.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def log_text(run_dir: Path) -> str:
    return (run_dir / "log.txt").read_text(encoding="utf-8")


def train_and_eval_metrics(run_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train records, eval records) of a run's metrics.jsonl."""
    metrics = read_metrics(run_dir)
    return [m for m in metrics if m["type"] == "train"], [m for m in metrics if m["type"] == "eval"]
