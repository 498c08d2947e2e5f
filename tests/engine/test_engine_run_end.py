"""A run's end and its checkpoints: the last step is the one reported (not the last logged
one), and a checkpoint the user asked for outlives `save_total_limit`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.engine import EventBus, RunState, TrainingControl
from studio.engine.checkpoints import (
    COMPLETE_MARKER,
    list_checkpoints,
    mark_complete,
    prune_checkpoints,
)
from studio.engine.events import StateChanged
from studio.engine.session import TrainingSession
from studio.runs import read_run
from tests.support.training_runs import read_metrics


@pytest.mark.slow
def test_finished_run_reports_its_last_step_and_keeps_the_requested_checkpoint(
    tmp_path: Path,
) -> None:
    # logging_steps 5 of 7 steps: the summary, the curve and the Runs list used to say 5.
    from studio.config import config_from_dict
    from tests.conftest import REPO

    config = config_from_dict(
        {
            "model": {"source": "tiny-demo"},
            "method": {"name": "lora", "rank": 4, "alpha": 8},
            "data": {"path": "sample_data/alpaca_en.jsonl", "max_length": 64},
            "training": {
                "max_steps": 7,
                "logging_steps": 5,
                "save_steps": 2,
                "save_total_limit": 1,
                "batch_size": 2,
            },
            "output": {"runs_dir": str(tmp_path / "runs")},
        }
    )
    bus, control = EventBus(), TrainingControl()
    # Ask for a checkpoint as soon as training runs: it is written at the end of step 1.
    bus.subscribe(
        lambda event: (
            control.request_save()
            if isinstance(event, StateChanged) and event.state is RunState.RUNNING
            else None
        )
    )
    result = TrainingSession(config, bus, control, base_dir=REPO, telemetry_interval=None).run()
    assert result.state is RunState.FINISHED
    assert result.steps == 7
    run = Path(result.run_dir)
    train_steps = [m["step"] for m in read_metrics(run) if m["type"] == "train"]
    assert train_steps[-1] == 7
    summary = read_run(run)
    assert summary.step == 7 and summary.max_steps == 7
    steps = [checkpoint.step for checkpoint in list_checkpoints(run)]
    # checkpoint-1 was asked for; of the rotated ones only the newest (limit 1) stays.
    assert steps == [1, 6] or steps == [1, 7], steps


def _checkpoint(folder: Path, step: int, requested: bool = False) -> None:
    path = folder / "checkpoints" / f"checkpoint-{step}"
    path.mkdir(parents=True)
    mark_complete(path, step, requested=requested)


def test_pruning_leaves_requested_checkpoints_outside_the_limit(tmp_path: Path) -> None:
    for step in (2, 3, 4, 6, 8):
        _checkpoint(tmp_path, step, requested=step == 3)
    prune_checkpoints(tmp_path, keep=2)
    assert [c.step for c in list_checkpoints(tmp_path)] == [3, 6, 8]
    marker = json.loads((tmp_path / "checkpoints" / "checkpoint-3" / COMPLETE_MARKER).read_text())
    assert marker["requested"] is True


def test_pruning_without_requests_keeps_the_newest(tmp_path: Path) -> None:
    for step in (2, 4, 6):
        _checkpoint(tmp_path, step)
    prune_checkpoints(tmp_path, keep=1)
    assert [c.step for c in list_checkpoints(tmp_path)] == [6]
