"""The Runs screen through the real app: the list shows finished, stopped and failed runs; a run
opens (config, curves); two runs compare (curves, config diff); a stopped run resumes and
trains to the end; an out-of-memory failure is triaged and relaunched from its last checkpoint;
export, re-run and delete (asked first); bad requests get a message, not a traceback."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from textual.widgets import Button, Input, OptionList, Static

from studio.config import load_config
from studio.engine import EventBus, RunState, StepMetrics, TrainingControl
from studio.engine.session import TrainingSession
from studio.runs import read_run
from studio.ui.app import make_app
from studio.ui.screens.dialogs import ConfirmScreen, ErrorScreen
from tests.conftest import REPO, SAMPLE_DATA
from tests.support.pilot import collect_notes
from tests.support.ui import isolated_services, settle

QUICKSTART = SAMPLE_DATA / "configs" / "quickstart.yaml"
SIZE = (80, 24)


def tiny_config(runs: Path, name: str | None, *extra: str):
    overrides = [
        f"output.runs_dir={runs}",
        "training.max_steps=6",
        "training.logging_steps=1",
        "training.save_steps=2",
        "training.save_total_limit=2",
        *extra,
    ]
    if name:
        overrides.append(f"output.run_name={name}")
    return load_config(QUICKSTART, overrides)


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory) -> Path:
    """done (finished), halted (stopped at step 3, another learning rate)."""
    runs = tmp_path_factory.mktemp("runs-screen") / "runs"
    done = TrainingSession(tiny_config(runs, "done"), base_dir=REPO, telemetry_interval=None)
    assert done.run().state is RunState.FINISHED
    bus, control = EventBus(), TrainingControl()
    bus.subscribe(lambda e: control.stop() if isinstance(e, StepMetrics) and e.step >= 3 else None)
    config = tiny_config(runs, "halted", "training.learning_rate=0.001")
    halted = TrainingSession(config, bus, control, base_dir=REPO, telemetry_interval=None)
    assert halted.run().state is RunState.STOPPED
    return runs


def copy_runs(runs: Path, tmp_path: Path) -> Path:
    """A test's own copy of the runs (resume and delete change them)."""
    target = tmp_path / "runs"
    shutil.copytree(runs, target)
    return target


def studio_for(tmp_path: Path, runs: Path):
    app = make_app(isolated_services(tmp_path))
    app.studio.config = tiny_config(runs, None)
    return app


def row_statuses(screen) -> dict[str, str]:
    table = screen.table
    return {
        run.name: str(table.get_row(str(run.path))[2]) for run in table.runs
    }  # column 2: status


def select_run(screen, name: str) -> None:
    table = screen.table
    table.move_cursor(row=[run.name for run in table.runs].index(name))


def text_of(widget: Static) -> str:
    return str(widget.render())


@pytest.mark.slow
def test_list_open_compare_and_resume(runs_folder: Path, tmp_path: Path) -> None:
    runs = copy_runs(runs_folder, tmp_path)
    stop = read_run(runs / "halted").last_checkpoint  # saved when it stopped
    assert stop is not None and 3 <= stop < 6

    async def scenario() -> None:
        app = studio_for(tmp_path, runs)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("5")
            await settle(pilot)
            screen = app.screen
            assert row_statuses(screen) == {"done": "finished", "halted": "stopped"}
            assert [run.name for run in screen.table.runs] == ["halted", "done"]  # newest first
            detail = text_of(screen.query_one("#runs-detail", Static))
            assert "halted" in detail and f"r resume from checkpoint-{stop}" in detail

            # Filter by status, then by text, from the keyboard.
            await pilot.press("slash", *"don")
            await settle(pilot)
            assert [run.name for run in screen.table.runs] == ["done"]
            await pilot.press("ctrl+u", "enter")
            await settle(pilot)
            assert len(screen.table.runs) == 2 and screen.table.has_focus
            await pilot.press("o")  # sort by name
            await settle(pilot)
            assert screen.table.sort_key == "name"
            assert [run.name for run in screen.table.runs] == ["done", "halted"]

            # The mouse sorts too: a click on the "loss" header.
            table = screen.table
            x = sum(column.get_render_width(table) for column in table.ordered_columns[:4])
            await pilot.click("#runs-table", offset=(x + 2, 0))
            await settle(pilot)
            assert (table.sort_key, table.descending) == ("loss", False)
            assert [run.name for run in table.runs] == ["done", "halted"]  # lower loss first

            # Open a run: its config and its loss curve.
            select_run(screen, "done")
            await pilot.press("enter")
            await pilot.pause()
            view = app.screen
            assert "learning_rate: 0.003" in text_of(view.query_one("#run-config", Static))
            plot = view.query_one("#run-loss")
            assert [len(series.points) for series in plot.series] == [6, 0]
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is screen

            # Compare: mark both with space, c; the overlay and the config difference.
            select_run(screen, "done")
            await pilot.press("space", "space", "c")
            await pilot.pause()
            compare = app.screen
            labels = [series.label for series in compare.query_one("#compare-loss").series]
            assert labels == ["1 done", "2 halted"]
            differences = compare.comparison.differences
            assert [d.key for d in differences] == ["training.learning_rate"]
            assert differences[0].values == (0.003, 0.001)
            diff = text_of(compare.query_one("#compare-diff", Static))
            assert "-  learning_rate: 0.003" in diff and "+  learning_rate: 0.001" in diff
            await pilot.press("escape")
            await pilot.pause()

            # Resume the stopped run: it trains to the end, shown on the Train screen.
            select_run(screen, "halted")
            await pilot.press("r")
            await pilot.pause()
            assert app.current_mode == "train"
            monitor = app.runs.monitor
            assert monitor is not None
            await settle(pilot, timeout=120)
            assert monitor.state is RunState.FINISHED, monitor.view().error
            assert monitor.latest.step == 6
            # The curve has the steps before the resume too, each once.
            assert [step for step, _ in monitor.view().train_loss] == [1, 2, 3, 4, 5, 6]
            await pilot.press("5")
            await settle(pilot)
            assert row_statuses(app.screen)["halted"] == "finished"

    asyncio.run(scenario())
    summary = read_run(runs / "halted")
    assert summary.status == "finished" and summary.step == 6
    log = (runs / "halted" / "log.txt").read_text()
    assert f"resuming from checkpoint-{stop} at step {stop}" in log


@pytest.mark.slow
def test_out_of_memory_is_triaged_and_relaunched(tmp_path: Path, monkeypatch) -> None:
    import torch
    from transformers import Trainer

    runs = tmp_path / "runs"
    real_step = Trainer.training_step

    def step_that_runs_out(self, *args, **kwargs):
        if self.state.global_step == 4:  # the 5th step, after checkpoint-4
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_step(self, *args, **kwargs)

    async def scenario() -> None:
        app = studio_for(tmp_path, runs)
        app.studio.config = tiny_config(runs, "oom")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            monkeypatch.setattr(Trainer, "training_step", step_that_runs_out)
            assert app.runs.start_training()
            await settle(pilot, timeout=120)
            monkeypatch.undo()
            assert app.runs.monitor.state is RunState.FAILED
            assert isinstance(app.screen, ErrorScreen)  # the failure, with advice
            await pilot.press("escape", "5")
            await settle(pilot)
            screen = app.screen
            assert row_statuses(screen) == {"oom": "failed (out_of_memory)"}
            assert "t what would fit" in text_of(screen.query_one("#runs-detail", Static))

            await pilot.press("t")
            await pilot.pause()
            triage = app.screen
            facts = text_of(triage.query_one("#triage-facts", Static))
            assert "at step 5 of 6" in facts and "checkpoint-4" in facts
            assert "sequence length up to 256" in facts
            keys = [choice.key for choice in triage.triage.choices]
            assert "smaller_batch" in keys
            options = triage.query_one("#triage-choices", OptionList)
            assert options.option_count == len(keys)
            # One key relaunches with that change.
            await pilot.press(str(keys.index("smaller_batch") + 1))
            await pilot.pause()
            assert app.current_mode == "train"
            await settle(pilot, timeout=120)
            assert app.runs.monitor.state is RunState.FINISHED, app.runs.monitor.view().error
            assert app.runs.monitor.latest.step == 6

    asyncio.run(scenario())
    run = runs / "oom"
    relaunched = load_config(run / "config.yaml")
    assert (relaunched.training.batch_size, relaunched.training.gradient_accumulation) == (4, 2)
    assert "resuming from checkpoint-4 at step 4" in (run / "log.txt").read_text()
    assert read_run(run).status == "finished"


@pytest.mark.slow
def test_export_rerun_delete_and_refusals(runs_folder: Path, tmp_path: Path) -> None:
    runs = copy_runs(runs_folder, tmp_path)
    notes: list[str] = []

    async def scenario() -> None:
        app = studio_for(tmp_path, runs)
        async with app.run_test(size=SIZE, message_hook=collect_notes(notes)) as pilot:
            await pilot.press("5")
            await settle(pilot)
            screen = app.screen

            # Nothing to resume in a finished run, no triage for a run that did not OOM.
            select_run(screen, "done")
            await pilot.press("r", "t")
            await pilot.pause()
            assert app.current_mode == "runs" and app.screen is screen
            assert any("done has finished" in note for note in notes)
            assert any("did not run out of memory" in note for note in notes)
            # Compare needs two runs.
            await pilot.press("c")
            await pilot.pause()
            assert any("mark two or more runs" in note for note in notes)

            # Export the adapter (default folder) from the dialog.
            await pilot.press("e")
            await pilot.pause()
            target = app.screen.query_one("#export-target", Input)
            assert target.value.endswith("done/exports/adapter")
            # Pressed directly: a click could land on a toast still showing over the button.
            app.screen.query_one("#export", Button).press()
            await settle(pilot)
            assert (runs / "done" / "exports" / "adapter" / "README.md").exists()
            assert any("exported the adapter" in note for note in notes)

            # Delete asks first: "n" keeps the run, "y" deletes it.
            select_run(screen, "halted")
            await pilot.press("d")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")
            await pilot.pause()
            assert (runs / "halted").is_dir()
            await pilot.press("d")
            await pilot.pause()
            await pilot.press("y")
            await settle(pilot)
            assert not (runs / "halted").exists()
            assert [run.name for run in screen.table.runs] == ["done"]

            # Re-run: the old config, under a new name, in the Config screen to edit.
            await pilot.press("n")
            await settle(pilot)
            assert app.current_mode == "config"
            config = app.studio.config
            assert config.output.run_name is None
            assert config.training.max_steps == 6 and config.training.learning_rate == 0.003
            assert app.studio.config_file is None
            shown = app.screen.form.validate().config  # what the Config screen's form holds
            assert shown is not None and shown.training.max_steps == 6
            assert shown.output.run_name is None

    asyncio.run(scenario())


@pytest.mark.slow
def test_running_and_interrupted_runs_are_told_apart(runs_folder: Path, tmp_path: Path) -> None:
    """A run another live process trains shows its pid (and can only be attached to); one
    whose process is gone shows as interrupted and can be resumed."""
    import json
    import os
    import time

    runs = copy_runs(runs_folder, tmp_path)
    for name, pid in (("elsewhere", os.getpid()), ("gone", 2**22 + 12345)):
        run = runs / name
        shutil.copytree(runs / "halted", run)
        status = json.loads((run / "status.json").read_text())
        status.update(state="running", pid=pid, process_started=time.time(), host=None)
        (run / "status.json").write_text(json.dumps(status))
    notes: list[str] = []

    async def scenario() -> None:
        app = studio_for(tmp_path, runs)
        async with app.run_test(size=SIZE, message_hook=collect_notes(notes)) as pilot:
            await pilot.press("5")
            await settle(pilot)
            screen = app.screen
            statuses = row_statuses(screen)
            assert statuses["elsewhere"] == f"running (pid {os.getpid()})"
            assert statuses["gone"] == "interrupted"
            select_run(screen, "elsewhere")
            await pilot.press("r", "d")
            await pilot.pause()
            assert any("elsewhere is training" in note for note in notes)
            assert isinstance(app.screen, ErrorScreen)  # never deletes a running run
            assert "still training" in text_of(app.screen.query_one("#error-message", Static))
            await pilot.press("escape")
            select_run(screen, "gone")
            await settle(pilot)
            assert "r resume from" in text_of(screen.query_one("#runs-detail", Static))

    asyncio.run(scenario())
    assert (runs / "elsewhere").is_dir()


def test_every_runs_palette_action_is_on_the_screen() -> None:
    from studio.ui.chrome.palette import SCREEN_ACTIONS
    from studio.ui.screens.runs import RunsScreen

    actions = [action for mode, action, _title, _help in SCREEN_ACTIONS if mode == "runs"]
    assert {"open", "compare", "resume", "triage", "export", "rerun", "delete"} <= set(actions)
    for action in actions:
        assert hasattr(RunsScreen, f"action_{action}"), action
