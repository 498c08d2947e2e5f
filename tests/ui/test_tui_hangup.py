"""A dropped connection never kills a run, in the TUI: `ftstudio` on a real pseudo-terminal
starts a run from the keyboard, the terminal hangs up (the pty's master closes: the kernel
sends SIGHUP), and the process goes on headless until the run has finished and written its
adapter. A new studio attached meanwhile shows the whole loss history and follows it to the
end; its pause key pauses the headless run, which keeps the test independent of speed.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import re
import select
import struct
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from studio.engine.events import RunState
from studio.ui.app import make_app
from studio.ui.chrome.terminal import TerminalOutput
from tests.support.cli import studio_process
from tests.support.ui import REPO, isolated_services, settle
from tests.ui.test_ui_attach import TIMEOUT, train_steps, wait_until

STEPS = 40
ROWS, COLUMNS = 36, 120
# CSI sequences, OSC strings, charset selection, keypad modes, cursor save / restore.
_ESCAPES = re.compile(
    rb"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78])"
)


class Terminal:
    """The pty's master side: everything the app draws is drained (a full pty would block
    the app), and searched with escape sequences removed."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.output = bytearray()
        self._reading = threading.Event()
        self._reading.set()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while self._reading.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    return
                if not data:
                    return
                self.output.extend(data)

    def text(self) -> str:
        return _ESCAPES.sub(b"", bytes(self.output)).decode("utf-8", errors="replace")

    def wait_for(self, text: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.text():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; the screen:\n{self.text()[-3000:]}")
            time.sleep(0.1)

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def hang_up(self) -> None:
        """What a dropped SSH connection does: the master side closes."""
        self._reading.clear()
        self._thread.join()
        os.close(self.master)


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "run.yaml"
    data = REPO / "sample_data" / "alpaca_en.jsonl"
    config.write_text(
        "model: {source: tiny-demo}\n"
        "method: {name: lora, rank: 16, alpha: 32, target_modules: all-linear}\n"
        "training_type: sft\n"
        f"data: {{path: {data}, max_length: 256}}\n"
        f"training: {{max_steps: {STEPS}, logging_steps: 1, learning_rate: 0.003,"
        " batch_size: 8, save_steps: 1000}\n"
        f"output: {{runs_dir: {tmp_path / 'runs'}, run_name: hup}}\n",
        encoding="utf-8",
    )
    return config


def start_studio(tmp_path: Path, config: Path) -> tuple[int, Terminal]:
    """`ftstudio --config run.yaml` as the session leader of a new pseudo-terminal."""
    env = dict(os.environ)
    env.update(
        TERM="xterm-256color",
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),  # the user's settings stay untouched
        HF_HUB_CACHE=str(tmp_path / "hub"),  # nothing to scan on the Models screen
        TEXTUAL_ANIMATIONS="none",
    )
    pid, master = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
            os.chdir(REPO)
            command = [sys.executable, "-m", "studio", "--config", str(config)]
            os.execve(sys.executable, command, env)
        finally:
            os._exit(127)
    return pid, Terminal(master)


def run_state(run: Path) -> str | None:
    try:
        return json.loads((run / "status.json").read_text(encoding="utf-8")).get("state")
    except (OSError, ValueError):  # not written yet, or caught mid-replace
        return None


def read_log(run: Path) -> str:
    try:
        return (run / "log.txt").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def wait_for(check, what: str, pid: int, terminal: Terminal) -> None:
    """Poll `check` until it holds; fail (with the screen) if the process ends or at TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while not check():
        assert exit_status(pid, 0) is None, f"the process ended waiting for {what}"
        assert time.monotonic() < deadline, f"no {what}; the screen:\n{terminal.text()[-3000:]}"
        time.sleep(0.1)


def exit_status(pid: int, timeout: float) -> int | None:
    """The child's exit code, once it has exited; None if it is still running at `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        waited, status = os.waitpid(pid, os.WNOHANG)
        if waited:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


@pytest.mark.slow
def test_a_run_started_in_the_tui_survives_the_terminal_hanging_up(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "hup"
    pid, terminal = start_studio(tmp_path, write_config(tmp_path))
    try:
        terminal.wait_for("Quit")  # the first screen's footer: the terminal is in raw mode
        terminal.press("3")
        terminal.wait_for("No run yet")
        terminal.press("s")
        deadline = time.monotonic() + TIMEOUT
        while len(train_steps(run)) < 3:
            assert exit_status(pid, 0) is None, terminal.text()[-3000:]
            assert time.monotonic() < deadline, f"no steps; the screen:\n{terminal.text()[-3000:]}"
            time.sleep(0.1)

        # Hold the run before the terminal goes, so the attach below sees it going however
        # fast this machine trains: p pauses at the end of the current step.
        terminal.press("p")
        wait_for(lambda: run_state(run) == "paused", "the pause", pid, terminal)

        terminal.hang_up()
        wait_for(
            lambda: "terminal hung up: training goes on headless" in read_log(run),
            "the hang-up note in the run's log",
            pid,
            terminal,
        )
        assert exit_status(pid, 0) is None, "the process died with its terminal"

        asyncio.run(attach_while_going(tmp_path, run))

        assert exit_status(pid, TIMEOUT) == 0
        pid = 0
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    status = json.loads((run / "status.json").read_text(encoding="utf-8"))
    assert status["state"] == "finished" and status["step"] == STEPS
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert [step for step, _ in train_steps(run)] == list(range(1, STEPS + 1))


async def attach_while_going(tmp_path: Path, run: Path) -> None:
    app = make_app(isolated_services(tmp_path))
    async with app.run_test(size=(COLUMNS, ROWS)) as pilot:
        await settle(pilot)
        assert app.runs.attach_run(run)
        monitor = app.runs.monitor
        assert monitor is not None
        await wait_until(lambda: monitor.state is RunState.PAUSED, "the replayed pause")
        logged = train_steps(run)
        await wait_until(lambda: len(monitor.view().train_loss) >= len(logged), "the replay")
        assert monitor.view().train_loss[0][0] == 1
        assert app.runs.training_active and monitor.view().finished is None  # attached while going

        await pilot.press("p")  # resume it from the attached studio
        await wait_until(lambda: monitor.view().finished is not None, "the end of the run")
        await settle(pilot)
        finished = monitor.view().finished
        assert finished.state is RunState.FINISHED and finished.steps == STEPS
        assert finished.adapter_dir is not None
        # The full loss history, every step, exactly as the run logged it.
        assert monitor.view().train_loss == [(float(s), loss) for s, loss in train_steps(run)]


def test_output_to_a_hung_up_terminal_is_dropped_not_raised() -> None:
    """Textual's writer thread dies on the first EIO, and the app then blocks on its full
    write queue; the studio's driver drops what a dead terminal cannot take instead."""

    class HungUp:
        writes = 0

        def write(self, text: str) -> int:
            self.writes += 1
            raise OSError(5, "Input/output error")

        def flush(self) -> None:
            raise OSError(5, "Input/output error")

    stream = HungUp()
    output = TerminalOutput(stream)
    assert output.write("\x1b[?1049l") == len("\x1b[?1049l")
    output.flush()
    assert output.write("more") == 4 and output.gone.is_set()
    assert stream.writes == 1  # nothing more reaches the dead terminal


@pytest.mark.slow
def test_opening_the_studio_with_a_bad_config_says_why_without_a_traceback(
    tmp_path: Path,
) -> None:
    """`ftstudio --config FILE [--set KEY=VALUE]` (how the hang-up test starts its run) checks
    the config before the app takes the terminal."""

    studio = studio_process
    missing = studio("--config", str(tmp_path / "missing.yaml"))
    assert missing.returncode == 2 and "config file not found" in missing.stderr
    bad = studio("--config", str(write_config(tmp_path)), "--set", "training.max_steps=-3")
    assert bad.returncode == 2 and "max_steps" in bad.stderr
    alone = studio("--set", "training.max_steps=3")
    assert alone.returncode == 2 and "give the config too" in alone.stderr
    for result in (missing, bad, alone):
        assert "Traceback" not in result.stderr
