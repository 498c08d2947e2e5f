"""Fault injection, part two: runs that fail while they train. A full disk (injected ENOSPC,
and a real 30 MB tmpfs where the machine allows mounting one), a run folder removed under a
live run, SIGTERM, two runs taking the same name. The promise each time: the user gets a
message with advice and no traceback, status.json never stays `running`, and what was saved
stays usable (the run resumes)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from studio.engine import EventBus, RunState, StepMetrics
from studio.engine.session import TrainingSession
from studio.runs import read_run
from tests.conftest import REPO
from tests.support.cli import run_cli
from tests.support.disks import small_tmpfs
from tests.support.hostile_world import QUICKSTART as CONFIG
from tests.support.hostile_world import (
    FullDisk,
    assert_no_traceback,
    tiny_config,
    tiny_overrides,
)


def _session(config: Any, bus: EventBus | None = None) -> TrainingSession:
    return TrainingSession(config, bus, base_dir=REPO, telemetry_interval=None)


def _assert_not_running(run: Path) -> dict[str, Any]:
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed", status
    assert read_run(run).status == "failed"
    return status


@pytest.mark.slow
def test_disk_full_during_a_checkpoint_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from studio.engine import checkpoints

    disk = FullDisk(monkeypatch)
    original = checkpoints.mark_complete

    def mark_complete(folder: Path, step: int | None, *args: Any, **kwargs: Any) -> None:
        if step == 4:  # the second checkpoint fills the disk
            raise disk.fill()
        original(folder, step, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "mark_complete", mark_complete)
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, "train", str(CONFIG), *tiny_overrides(runs, "full"))
    assert_no_traceback(out, err)
    assert code == 1
    assert "error (disk_full): the disk that holds" in out and "is full" in out
    assert "point output.runs_dir at a bigger disk" in out
    assert "log.txt" not in out  # the log could not be written, so it is not pointed at
    status = _assert_not_running(runs / "full")
    assert status["error"]["kind"] == "disk_full"

    # Room again: the run resumes from its last whole checkpoint and finishes.
    disk.full = False
    monkeypatch.setattr(checkpoints, "mark_complete", original)
    code, out, err = run_cli(capsys, "train", "--resume", str(runs / "full"), "--quiet")
    assert code == 0, out + err
    assert read_run(runs / "full").status == "finished"
    assert "resuming from checkpoint-2 at step 2" in (runs / "full" / "log.txt").read_text()


@pytest.mark.slow
def test_disk_full_during_the_final_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.methods import registry

    def save_trained(*args: Any, **kwargs: Any) -> None:
        # How safetensors words it: no OSError, no errno.
        raise RuntimeError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No '
            'space left on device" })'
        )

    monkeypatch.setattr(registry, "save_trained", save_trained)
    events: list[Any] = []
    bus = EventBus()
    bus.subscribe(events.append)
    result = _session(tiny_config(tmp_path / "runs", "final"), bus).run()
    assert result.state is RunState.FAILED
    [error] = [event for event in events if type(event).__name__ == "RunError"]
    assert error.kind == "disk_full" and "free space" in error.advice[0]
    run = tmp_path / "runs" / "final"
    _assert_not_running(run)
    assert read_run(run).checkpoints == 2  # both checkpoints kept: nothing lost
    assert not (run / "adapter").exists() and not (run / ".adapter.saving").exists()


def test_disk_full_before_the_start_leaves_no_empty_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    FullDisk(monkeypatch, full=True)
    events: list[Any] = []
    bus = EventBus()
    bus.subscribe(events.append)
    result = _session(tiny_config(tmp_path / "runs", "early"), bus).run()
    assert result.state is RunState.FAILED
    [error] = [event for event in events if type(event).__name__ == "RunError"]
    assert error.kind == "disk_full"
    assert not any("log.txt" in advice for advice in error.advice)
    assert list((tmp_path / "runs").iterdir()) == []


@pytest.mark.slow
def test_a_run_folder_removed_while_training_ends_the_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    events: list[Any] = []
    bus = EventBus()
    bus.subscribe(events.append)

    def remove_at_step_two(event: Any) -> None:
        if isinstance(event, StepMetrics) and event.step == 2 and (runs / "gone").exists():
            shutil.rmtree(runs / "gone")

    bus.subscribe(remove_at_step_two)
    config = tiny_config(runs, "gone", "training.max_steps=30", "training.save_steps=100")
    result = _session(config, bus).run()
    assert result.state is RunState.FAILED
    [error] = [event for event in events if type(event).__name__ == "RunError"]
    assert error.kind == "run_folder_removed"
    assert result.steps < 30
    assert not (runs / "gone" / "config.yaml").exists()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 30 MB filesystem (tmpfs); skipped where mounting is not allowed."""
    with small_tmpfs(tmp_path / "small", "30m") as folder:
        yield folder


@pytest.mark.slow
def test_a_real_full_disk_fails_cleanly_and_resumes(small_disk: Path) -> None:
    """`save_steps: 1` on a 30 MB filesystem with 1.5 MB left: a checkpoint of the tiny
    run is ~0.5 MB, so the third or so fills it. Then room is made and the run resumes."""
    filler = small_disk / "filler"
    with filler.open("wb") as stream:
        stream.write(b"\0" * (shutil.disk_usage(small_disk).free - 3 * 2**19))
    runs = small_disk / "runs"
    command = [
        sys.executable,
        "-m",
        "studio",
        "train",
        str(CONFIG),
        *tiny_overrides(runs, "small", "training.max_steps=12", "training.save_steps=1"),
        "--set",
        "training.save_total_limit=5",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    output = result.stdout + result.stderr
    assert_no_traceback(output)
    assert result.returncode == 1, output
    assert "error (disk_full)" in output, output
    run = runs / "small"
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed", status
    saved = read_run(run).last_checkpoint
    assert saved is not None and saved >= 1

    filler.unlink()
    resumed = subprocess.run(
        [sys.executable, "-m", "studio", "train", "--resume", str(run), "--quiet"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert read_run(run).status == "finished"


@pytest.mark.slow
def test_sigterm_stops_after_the_step_and_saves(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    command = [
        sys.executable,
        "-m",
        "studio",
        "train",
        str(CONFIG),
        *tiny_overrides(runs, "term", "training.max_steps=500", "training.save_steps=1000"),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env
    )
    metrics = runs / "term" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=300)
    assert_no_traceback(output)
    assert process.returncode == 0, output
    assert "terminated: stopping after this step and saving" in output
    summary = read_run(runs / "term")
    assert summary.status == "stopped" and 2 <= summary.step < 500
    assert summary.last_checkpoint == summary.step  # saved on the way out
    assert (runs / "term" / "adapter" / "adapter_model.safetensors").is_file()


def test_sigterm_deadline_setting() -> None:
    from studio.commands.train_console import DEFAULT_STOP_DEADLINE, stop_deadline

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("FTSTUDIO_STOP_DEADLINE", raising=False)
        assert stop_deadline() == DEFAULT_STOP_DEADLINE
        patch.setenv("FTSTUDIO_STOP_DEADLINE", "25")
        assert stop_deadline() == 25.0
        patch.setenv("FTSTUDIO_STOP_DEADLINE", "0")
        assert stop_deadline() is None


def test_two_runs_with_the_same_name_in_the_same_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from studio.engine.run_dir import RunDirectory

    config = tiny_config(tmp_path / "runs", None)
    # The other process takes the name between a look and the mkdir: the look sees nothing.
    monkeypatch.setattr(Path, "exists", lambda self: False)
    first = RunDirectory.create(config)
    second = RunDirectory.create(config)
    monkeypatch.undo()
    assert second.path.name == first.path.name + "-2"

    made: list[Path] = []
    failures: list[BaseException] = []
    start = threading.Barrier(6)

    def create() -> None:
        start.wait()
        try:
            made.append(RunDirectory.create(config).path)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and len(set(made)) == 6


def test_enospc_is_disk_full_however_it_is_worded(tmp_path: Path) -> None:
    from studio.engine.errors import classify_failure

    config = tiny_config(tmp_path, "x")
    for error in (
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        RuntimeError("IoError(Os { code: 28, kind: StorageFull })"),
    ):
        assert classify_failure(error, config).kind == "disk_full"
    assert classify_failure(ValueError("other"), config).kind == "internal"


@pytest.mark.slow
def test_sigterm_to_the_open_studio_stops_its_run_and_saves(tmp_path: Path) -> None:
    from tests.ui.test_tui_hangup import exit_status, start_studio, write_config
    from tests.ui.test_ui_attach import TIMEOUT, train_steps

    run = tmp_path / "runs" / "hup"
    pid, terminal = start_studio(tmp_path, write_config(tmp_path))
    try:
        terminal.wait_for("Quit")
        terminal.press("3")
        terminal.wait_for("No run yet")
        terminal.press("s")
        deadline = time.monotonic() + TIMEOUT
        while len(train_steps(run)) < 2:
            assert exit_status(pid, 0) is None, terminal.text()[-3000:]
            assert time.monotonic() < deadline, terminal.text()[-3000:]
            time.sleep(0.1)
        os.kill(pid, signal.SIGTERM)
        code = exit_status(pid, TIMEOUT)
        assert code == 0, terminal.text()[-3000:]
        pid = 0
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    summary = read_run(run)
    assert summary.status == "stopped" and summary.step < 40
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
