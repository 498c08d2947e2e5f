"""Attaching the studio to a run another process trains: the Train screen replays the whole
history from the run directory, follows it live, and its stop key stops the other process's
run (the adapter is saved). Also: the quit dialog's choices, and the start-up offer to attach.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio.engine.events import RunState
from studio.ui.app import make_app
from studio.ui.screens.dialogs import ChoiceScreen
from tests.support.pilot import collect_notes
from tests.support.ui import REPO, isolated_services, settle

QUICKSTART = REPO / "sample_data" / "configs" / "quickstart.yaml"
# Generous: two shared cores, other test processes beside this one.
TIMEOUT = 240.0


def train_steps(run: Path) -> list[tuple[int, float]]:
    """(step, loss) of the run's logged training steps, as metrics.jsonl has them now."""
    try:
        lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    steps = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line being written
        if record.get("type") == "train" and record.get("loss") is not None:
            steps.append((record["step"], record["loss"]))
    return steps


def start_headless_run(runs: Path, name: str, steps: int) -> subprocess.Popen:
    """`ftstudio train` in another process, logging every step."""
    command = [
        sys.executable, "-m", "studio", "train", str(QUICKSTART), "--quiet",
        "--set", f"output.runs_dir={runs}", "--set", f"output.run_name={name}",
        "--set", f"training.max_steps={steps}", "--set", "training.logging_steps=1",
    ]  # fmt: skip
    log = (runs.parent / f"{name}.out").open("wb")
    return subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


async def wait_until(condition, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.slow
def test_attach_replays_follows_and_stops_a_run_in_another_process(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    run = runs / "elsewhere"
    process = start_headless_run(runs, "elsewhere", steps=5000)  # ends when stopped
    try:
        asyncio.run(attach_follow_and_stop(tmp_path, run, process))
        assert process.wait(timeout=TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "stopped"
    assert (run / "adapter" / "adapter_model.safetensors").is_file()


async def attach_follow_and_stop(tmp_path: Path, run: Path, process: subprocess.Popen) -> None:
    await wait_until(
        lambda: len(train_steps(run)) >= 3 or process.poll() is not None, "the first steps"
    )
    assert process.poll() is None, (tmp_path / "elsewhere.out").read_text()

    app = make_app(isolated_services(tmp_path))
    async with app.run_test(size=(110, 34)) as pilot:
        await settle(pilot)
        logged_before = train_steps(run)
        assert app.runs.attach_run(run) is True
        await settle(pilot)
        assert app.current_mode == "train"
        assert app.runs.training_active and app.runs.attached_run_live
        monitor = app.runs.monitor
        assert monitor is app.runs.attached.monitor

        # The whole history, from step 1, exactly as logged.
        await wait_until(lambda: len(monitor.view().train_loss) >= len(logged_before), "the replay")
        shown = monitor.view().train_loss
        assert shown[: len(logged_before)] == [(float(s), loss) for s, loss in logged_before]
        assert shown[0][0] == 1

        # Then live: steps trained after attaching arrive too.
        last = logged_before[-1][0]
        await wait_until(lambda: (monitor.latest.step if monitor.latest else 0) > last + 2, "new")
        await pilot.pause()
        assert monitor.state is RunState.RUNNING

        # Start must not start a second run on top of the attached one.
        assert app.runs.start_training() is False

        # Stop from the Train screen: the other process stops at the end of a step and saves.
        await pilot.press("x")
        await wait_until(lambda: monitor.view().finished is not None, "the end of the run")
        await settle(pilot)
        finished = monitor.view().finished
        assert finished.state is RunState.STOPPED
        assert finished.adapter_dir is not None
        assert not app.runs.training_active
        everything = train_steps(run)
        assert [(float(s), loss) for s, loss in everything] == monitor.view().train_loss
        # Attached runs are another process's: quitting now asks nothing.
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert app.leaving is None


def test_attach_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        messages: list[str] = []
        async with app.run_test(size=(100, 30), message_hook=collect_notes(messages)) as pilot:
            await settle(pilot)
            assert app.runs.attach_run(tmp_path / "nowhere") is False
            assert app.runs.attach_run(tmp_path) is False
            await pilot.pause()
            assert app.runs.attached is None and not app.runs.training_active
        assert any("no run folder" in text for text in messages)
        assert any("not a run folder" in text for text in messages)

    asyncio.run(scenario())


@pytest.mark.slow
def test_quit_with_a_run_training_offers_stop_keep_or_cancel(tmp_path: Path) -> None:
    """The dialog's three answers; a fake trainer stands in for a run (no torch here)."""

    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        release = asyncio.Event()
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            from studio.engine.control import TrainingControl
            from studio.ui.runs.monitor import RunMonitor

            app.runs.monitor, app.runs.control = RunMonitor(), TrainingControl()
            loop = asyncio.get_running_loop()

            def fake_trainer() -> None:
                asyncio.run_coroutine_threadsafe(release.wait(), loop).result()

            app.run_worker(fake_trainer, group="trainer", thread=True)
            await pilot.pause()
            assert app.runs.trainer_running

            await pilot.press("ctrl+q")
            await pilot.pause()
            assert isinstance(app.screen, ChoiceScreen)
            await pilot.press("escape")  # cancel
            await pilot.pause()
            assert not isinstance(app.screen, ChoiceScreen) and app.is_running

            await pilot.press("ctrl+q")
            await pilot.pause()
            await pilot.click("#choice-cancel")
            await pilot.pause()
            assert app.is_running and app.leaving is None

            await pilot.press("ctrl+q")
            await pilot.pause()
            await pilot.press("k")  # keep it running
            await pilot.pause()
            assert app.leaving == "keep" and not app.runs.control.stop_requested
            release.set()

    asyncio.run(scenario())


def test_quit_choosing_stop_asks_the_run_to_stop(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        release = asyncio.Event()
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            from studio.engine.control import TrainingControl
            from studio.ui.runs.monitor import RunMonitor

            app.runs.monitor, app.runs.control = RunMonitor(), TrainingControl()
            loop = asyncio.get_running_loop()
            app.run_worker(
                lambda: asyncio.run_coroutine_threadsafe(release.wait(), loop).result(),
                group="trainer",
                thread=True,
            )
            await pilot.pause()
            await pilot.press("ctrl+q")
            await pilot.pause()
            await pilot.press("s")
            await pilot.pause()
            assert app.leaving == "stop" and app.runs.control.stop_requested
            release.set()

    asyncio.run(scenario())


@pytest.mark.slow
@pytest.mark.parametrize("alive", [True, False])
def test_start_up_offers_to_attach_to_a_run_another_process_trains(
    tmp_path: Path, alive: bool
) -> None:
    """A run whose status names a live process (here: a sleeping child) is offered; one whose
    process is gone is not."""
    runs = tmp_path / "runs"
    run = runs / "busy-run"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("model:\n  source: tiny-demo\n", encoding="utf-8")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        if not alive:
            sleeper.kill()
            sleeper.wait()
        status = {
            "state": "running",
            "pid": sleeper.pid,
            "started": time.time(),
            "process_started": time.time(),
            "step": 3,
        }
        (run / "status.json").write_text(json.dumps(status), encoding="utf-8")
        asyncio.run(start_up(tmp_path, alive))
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


async def start_up(tmp_path: Path, alive: bool) -> None:
    services = isolated_services(tmp_path, workdir=tmp_path)
    app = make_app(services)
    app.look_for_running_runs = True
    messages: list[str] = []
    async with app.run_test(size=(100, 30), message_hook=collect_notes(messages)) as pilot:
        await settle(pilot)
        offered = [text for text in messages if "busy-run" in text]
        if not alive:
            assert offered == [] and app.runs.running_elsewhere == []
            return
        assert offered and "ctrl+r attaches" in offered[0] and "pid" in offered[0]
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.current_mode == "train"
        assert (
            app.runs.attached is not None
            and app.runs.attached.path == tmp_path / "runs" / "busy-run"
        )
        app.runs.attached.close()
