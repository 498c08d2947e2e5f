"""A dropped connection never kills a run: a headless `ftstudio train` on a real terminal
survives the terminal's hang-up (SIGHUP) and finishes; a follower attached meanwhile — in
this process and as `ftstudio runs follow` — sees the whole loss history; another process can
pause, save and stop a run through its folder; liveness tells a dead run from a live one."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from studio.config import load_config
from studio.engine import (
    LogLine,
    RunError,
    RunFinished,
    RunState,
    StateChanged,
    StepMetrics,
    TelemetryEvent,
)
from studio.engine.checkpoints import list_checkpoints
from studio.engine.follower import RunFollower, replay_run
from studio.engine.liveness import effective_state
from studio.engine.remote_control import RemoteControl
from studio.engine.session import TrainingSession
from tests.conftest import REPO, SAMPLE_DATA
from tests.support.processes import dead_pid

QUICKSTART = SAMPLE_DATA / "configs" / "quickstart.yaml"


def wait_for(condition, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def metrics(run: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    except (OSError, ValueError):
        return []


@pytest.mark.slow
def test_run_survives_terminal_hangup_and_followers_see_everything(tmp_path: Path) -> None:
    run = tmp_path / "hup"
    steps = 30
    command = [
        sys.executable, "-m", "studio", "train", str(QUICKSTART),
        "--set", f"output.runs_dir={tmp_path}", "--set", "output.run_name=hup",
        "--set", f"training.max_steps={steps}", "--set", "training.logging_steps=1",
    ]  # fmt: skip
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a session leader whose controlling terminal is the pty
        os.chdir(REPO)
        os.execv(sys.executable, command)
    screen = bytearray()
    reading = threading.Event()
    reading.set()

    def read_terminal() -> None:
        while reading.is_set():
            ready, _, _ = select.select([terminal], [], [], 0.05)
            if ready:
                try:
                    screen.extend(os.read(terminal, 65536))
                except OSError:
                    return

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    attached = None
    try:
        wait_for(lambda: len(metrics(run)) >= 3, what="the first steps")
        # Attach two followers to the live run: this process's, and a new `ftstudio`.
        seen = []
        follower = RunFollower(run, poll_seconds=0.2)
        follower.start(seen.append)
        attached = subprocess.Popen(
            [sys.executable, "-m", "studio", "runs", "follow", str(run)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert b"loss" in screen  # the progress line reached the terminal
        # The laptop lid closes: the terminal hangs up while the run is mid-way.
        reading.clear()
        reader.join()
        during = len([m for m in metrics(run) if m["type"] == "train"])
        os.close(terminal)
        assert during < steps
        deadline = time.monotonic() + 240
        while (waited := os.waitpid(pid, os.WNOHANG)) == (0, 0):
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.2)
        pid = 0
        assert os.waitstatus_to_exitcode(waited[1]) == 0
        follower.thread.join(timeout=30)
        output, _ = attached.communicate(timeout=60)
    finally:
        reading.clear()
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        if attached is not None and attached.poll() is None:
            attached.kill()
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == steps
    assert (run / "adapter" / "adapter_model.safetensors").exists()
    assert "terminal hung up: training goes on headless" in (run / "log.txt").read_text()

    expected = [(m["step"], m["loss"]) for m in metrics(run) if m["type"] == "train"]
    assert [step for step, _ in expected] == list(range(1, steps + 1))
    followed = [(e.step, e.loss) for e in seen if isinstance(e, StepMetrics)]
    assert followed == expected  # the whole history, each step once, replay then live
    assert isinstance(seen[-1], RunFinished) and seen[-1].state is RunState.FINISHED
    assert any(isinstance(e, StateChanged) and e.state is RunState.RUNNING for e in seen)
    assert any(isinstance(e, LogLine) and "trainable params" in e.text for e in seen)
    assert any(isinstance(e, TelemetryEvent) for e in seen)
    assert attached.returncode == 0, output
    assert f"{steps}/{steps}" in output and "run finished after" in output


@pytest.mark.slow
def test_another_process_pauses_saves_and_stops_a_run(tmp_path: Path) -> None:
    config = load_config(
        QUICKSTART,
        [
            f"output.runs_dir={tmp_path}",
            "output.run_name=remote",
            "training.max_steps=300",
            "training.logging_steps=1",
        ],
    )
    session = TrainingSession(config, telemetry_interval=None)
    results = []
    trainer = threading.Thread(target=lambda: results.append(session.run()))
    trainer.start()
    run = tmp_path / "remote"
    try:
        wait_for(lambda: len(metrics(run)) >= 2, what="the first steps")
        remote = RemoteControl(run)
        remote.pause()
        assert remote.wait_for_ack(timeout=30)
        wait_for(lambda: json.loads((run / "status.json").read_text())["state"] == "paused")
        paused_at = len(metrics(run))
        time.sleep(1.0)
        assert len(metrics(run)) == paused_at  # no step while paused
        remote.request_save()
        remote.resume()
        assert remote.wait_for_ack(timeout=30)
        wait_for(lambda: any(c.complete for c in list_checkpoints(run)), what="the saved one")
        stop = subprocess.run(
            [sys.executable, "-m", "studio", "runs", "control", str(run), "stop"],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert stop.returncode == 0 and "stop: sent" in stop.stdout, stop.stdout + stop.stderr
        trainer.join(timeout=120)
    finally:
        session.control.stop()
        trainer.join()
    assert results[0].state is RunState.STOPPED and results[0].steps < 300
    log = (run / "log.txt").read_text()
    for command in ("pause", "save", "resume", "stop"):
        assert f"command from another process: {command}" in log


def write_status(run: Path, **fields) -> None:
    (run / "status.json").write_text(json.dumps(fields))


def test_follower_reads_whole_lines_and_ends_with_the_run(tmp_path: Path) -> None:
    run = tmp_path / "synthetic"
    run.mkdir()
    (run / "config.yaml").write_text("{}\n")
    started = time.time()
    write_status(run, state="running", pid=os.getpid(), process_started=started + 1e6,
                 started=started)  # fmt: skip
    record = {"type": "train", "time": started, "step": 1, "max_steps": 2, "loss": 2.5}
    record2 = {**record, "step": 2, "loss": 1.5, "eval_accuracy": 0.5}
    line, line2 = json.dumps(record) + "\n", json.dumps(record2) + "\n"
    (run / "metrics.jsonl").write_text(line + line2[:20])  # caught in the middle of a write
    (run / "log.txt").write_text("12:00:00 info    state: running training for 2 steps\n")
    follower = RunFollower(run)
    first = follower.poll()
    assert [type(e) for e in first] == [StateChanged, StepMetrics]
    assert first[1].step == 1 and first[1].loss == 2.5 and not follower.done
    with (run / "metrics.jsonl").open("a") as stream:
        stream.write(line2[20:])  # the write completes
    write_status(run, state="finished", pid=os.getpid(), step=2, final_loss=1.5, started=started)
    last = follower.poll()
    assert [type(e) for e in last] == [StepMetrics, StateChanged, RunFinished]
    assert last[0].step == 2 and last[0].extra == {"eval_accuracy": 0.5}
    assert follower.done and last[-1].final_loss == 1.5 and follower.poll() == []

    # A run whose process vanished ends the follow as interrupted.
    write_status(run, state="running", pid=dead_pid(), step=2, started=started)
    events = replay_run(run)
    assert isinstance(events[-3], RunError) and events[-3].kind == "interrupted"
    assert events[-1].state is RunState.FAILED


def test_liveness_tells_dead_reused_and_remote_runs_apart() -> None:
    now = time.time()
    alive = {"state": "running", "pid": os.getpid(), "process_started": now + 60}
    assert effective_state(alive) == "running"
    assert effective_state({**alive, "pid": dead_pid()}) == "interrupted"
    # Our pid, but this process started after the run did: the pid was reused.
    assert effective_state({**alive, "process_started": 1000.0}) == "interrupted"
    assert effective_state({**alive, "state": "stopped", "pid": dead_pid()}) == "stopped"
    remote = {"state": "paused", "pid": 1, "host": "elsewhere", "heartbeat": now}
    assert effective_state(remote) == "paused"
    assert effective_state({**remote, "heartbeat": now - 600}) == "interrupted"
