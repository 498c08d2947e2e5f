"""The runs list: statuses (finished, stopped, failed, interrupted, running), sort and filter,
compare, delete with confirmation, re-run — through the API and `ftstudio runs`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from studio.config import load_config
from studio.engine import EventBus, RunState, StepMetrics, TrainingControl
from studio.engine.session import TrainingSession
from studio.runs import (
    ConfirmationRequired,
    compare_runs,
    config_for_rerun,
    delete_run,
    find_run,
    list_runs,
    plan_delete,
    read_curves,
    render_loss_overlay,
)
from tests.conftest import SAMPLE_DATA
from tests.support.cli import studio_process
from tests.support.processes import dead_pid

QUICKSTART = SAMPLE_DATA / "configs" / "quickstart.yaml"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A runs folder with a finished, a stopped, a failed, an interrupted and a running run."""
    folder = tmp_path_factory.mktemp("runs")

    def config(name: str, *extra: str):
        return load_config(
            QUICKSTART,
            [
                f"output.runs_dir={folder}",
                f"output.run_name={name}",
                "training.max_steps=6",
                "training.logging_steps=1",
                *extra,
            ],
        )

    finished = TrainingSession(config("finished"), telemetry_interval=None).run()
    assert finished.state is RunState.FINISHED
    bus, control = EventBus(), TrainingControl()
    bus.subscribe(lambda e: control.stop() if isinstance(e, StepMetrics) and e.step >= 2 else 0)
    stopped = TrainingSession(
        config("stopped", "training.learning_rate=0.001"), bus, control, telemetry_interval=None
    ).run()
    assert stopped.state is RunState.STOPPED
    failed = TrainingSession(
        config(
            "failed",
            "data.path=sample_data/bad/alpaca_with_errors.jsonl",
            "data.on_bad_record=stop",
        ),
        telemetry_interval=None,
    ).run()
    assert failed.state is RunState.FAILED
    # A run whose process died without a word (kill -9): status.json still says running.
    shutil.copytree(folder / "finished", folder / "killed")
    status = json.loads((folder / "killed" / "status.json").read_text())
    status.update(state="running", pid=dead_pid(), final_loss=None)
    (folder / "killed" / "status.json").write_text(json.dumps(status))
    # A run this very process is training.
    shutil.copytree(folder / "stopped", folder / "live")
    status = json.loads((folder / "live" / "status.json").read_text())
    status.update(state="paused", pid=os.getpid(), process_started=status["started"] + 1e6)
    (folder / "live" / "status.json").write_text(json.dumps(status))
    return folder


@pytest.mark.slow
def test_every_status_is_shown_as_it_is(runs: Path) -> None:
    by_name = {run.name: run for run in list_runs(runs)}
    assert {name: run.status for name, run in by_name.items()} == {
        "finished": "finished",
        "stopped": "stopped",
        "failed": "failed",
        "killed": "interrupted",
        "live": "running",
    }
    finished = by_name["finished"]
    assert (finished.model, finished.method, finished.training_type) == ("tiny-demo", "lora", "sft")
    assert finished.step == 6 and finished.max_steps == 6
    assert finished.final_loss is not None and finished.best_loss <= finished.final_loss
    assert finished.adapter_bytes and finished.adapter_bytes > 10_000
    assert finished.duration_seconds and not finished.resumable
    stopped = by_name["stopped"]
    assert stopped.step < 6 and stopped.checkpoints == 1 and stopped.resumable
    failed = by_name["failed"]
    assert failed.error_kind == "data" and failed.adapter_bytes is None and failed.resumable
    assert by_name["killed"].error_kind == "interrupted" and by_name["killed"].resumable
    assert by_name["live"].state == "paused" and not by_name["live"].resumable


@pytest.mark.slow
def test_sort_filter_and_search(runs: Path) -> None:
    names = [run.name for run in list_runs(runs, sort="name")]
    assert names == sorted(names)
    assert [run.name for run in list_runs(runs, sort="name", descending=True)] == names[::-1]
    steps = [run.step for run in list_runs(runs, sort="steps")]
    assert steps == sorted(steps)
    losses = [run.final_loss for run in list_runs(runs, sort="loss")]
    assert losses[-1] is None and losses[0] == min(x for x in losses if x is not None)
    assert {run.name for run in list_runs(runs, status=["failed", "interrupted"])} == {
        "failed",
        "killed",
    }
    assert [run.name for run in list_runs(runs, search="stop")] == ["stopped"]
    assert find_run("fini", runs) == runs / "finished"


@pytest.mark.slow
def test_open_compare_and_rerun(runs: Path) -> None:
    curves = read_curves(runs / "finished")
    assert [step for step, _ in curves.train_loss] == [1, 2, 3, 4, 5, 6]
    assert len(curves.learning_rate) == 6
    comparison = compare_runs([runs / "finished", runs / "stopped"])
    assert [d.key for d in comparison.differences] == ["training.learning_rate"]
    assert comparison.differences[0].values == (0.003, 0.001)
    plot = render_loss_overlay(comparison, width=60, height=12)
    assert "finished" in plot and "stopped" in plot and "\x1b[" not in plot
    rerun = config_for_rerun(runs / "stopped")
    assert rerun.output.run_name is None and rerun.training.learning_rate == 0.001


@pytest.mark.slow
def test_compare_names_a_broken_config_and_its_line(runs: Path, tmp_path: Path) -> None:
    from studio.errors import ConfigError

    broken = tmp_path / "broken"
    shutil.copytree(runs / "stopped", broken)
    (broken / "config.yaml").write_text("model:\n  source: [tiny-demo\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken/config.yaml, line \d+") as caught:
        compare_runs([runs / "finished", broken])
    assert "fix or remove" in str(caught.value)


@pytest.mark.slow
def test_delete_asks_first_and_never_deletes_a_running_run(runs: Path, tmp_path: Path) -> None:
    from studio.errors import ConfigError

    victim = tmp_path / "victim"
    shutil.copytree(runs / "failed", victim)
    plan = plan_delete(victim)
    assert plan.name == "victim" and "failed" in plan.describe()
    with pytest.raises(ConfirmationRequired):
        delete_run(victim)
    assert victim.exists()
    delete_run(victim, confirm=True)
    assert not victim.exists() and not list(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="still training"):
        plan_delete(runs / "live")


def ftstudio(*args: str) -> subprocess.CompletedProcess[str]:
    return studio_process(*args, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_headless_runs_commands(runs: Path, tmp_path: Path) -> None:
    listing = ftstudio("runs", "--runs-dir", str(runs), "--sort", "name")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split()[:6] == ["NAME", "DATE", "MODEL", "METHOD", "TYPE", "STATUS"]
    assert [line.split()[0] for line in lines[1:]] == sorted(
        ["failed", "finished", "killed", "live", "stopped"]
    )
    assert "interrupted" in listing.stdout and "running (paused)" in listing.stdout

    as_json = json.loads(
        ftstudio("runs", "--runs-dir", str(runs), "--status", "stopped", "--json").stdout
    )
    assert [run["name"] for run in as_json] == ["stopped"]

    show = ftstudio("runs", "show", "failed", "--runs-dir", str(runs))
    assert show.returncode == 0 and "error (data)" in show.stdout and "config.yaml:" in show.stdout

    compare = ftstudio("runs", "compare", "finished", "stopped", "--runs-dir", str(runs))
    assert compare.returncode == 0, compare.stderr
    assert (
        "training.learning_rate" in compare.stdout and "+  learning_rate: 0.001" in compare.stdout
    )

    shutil.copytree(runs / "failed", tmp_path / "gone")
    refused = ftstudio("runs", "delete", "gone", "--runs-dir", str(tmp_path))
    assert refused.returncode == 1 and (tmp_path / "gone").exists()
    deleted = ftstudio("runs", "delete", "gone", "--runs-dir", str(tmp_path), "--yes")
    assert deleted.returncode == 0 and not (tmp_path / "gone").exists()

    missing = ftstudio("runs", "show", "nope", "--runs-dir", str(runs))
    assert missing.returncode == 2 and "no run 'nope'" in missing.stderr
