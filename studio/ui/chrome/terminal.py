"""The studio in a real terminal, and what becomes of a run when the studio leaves it.

Users run ftstudio over SSH; a closed laptop lid or a dropped network hangs the terminal up.
A run training in the studio must not die with it:

- `HangupTolerantDriver` is Textual's Linux driver with an output that survives the terminal:
  once a write fails (EIO on a hung-up tty) or the terminal is known gone, output is dropped
  instead of killing Textual's writer thread (after which the app would block on a full write
  queue), and a failed read of the terminal ends the input thread instead of the app.
- `run_app_in_terminal` runs the app on its own event loop with a SIGHUP handler (only the main
  thread may install one). On a hang-up the handler cuts the terminal off at once (stdin,
  stdout, stderr to /dev/null) and asks the app to leave. When the app has exited, a run still
  training here goes on headless — `studio.engine.detach.continue_headless`, output appended
  to the run's log — and the process exits when the run ends. Quitting with "keep running"
  does the same after printing where the run is and how to attach to it again; "stop and
  quit" waits for the run to save its adapter.

The loop is the app's own (not `asyncio.run`'s) so that the app's exit returns at once while
the trainer thread goes on; waiting for the loop's executor is waiting for the trainer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.drivers.linux_driver import LinuxDriver

from studio.engine.detach import continue_headless, detach_from_terminal, on_hangup
from studio.engine.events import RunState

if TYPE_CHECKING:
    from studio.ui.app import StudioApp
    from studio.ui.runs.monitor import RunMonitor

# The drivers of this process's apps, for the SIGHUP handler to cut off.
_DRIVERS: weakref.WeakSet[HangupTolerantDriver] = weakref.WeakSet()


class TerminalOutput:
    """The terminal's output stream as Textual's writer thread writes it: once the terminal
    is gone (a write fails with EIO, or `cut()` was called) writes are dropped, not raised."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.gone = threading.Event()

    def cut(self) -> None:
        self.gone.set()

    def write(self, text: str) -> int:
        if not self.gone.is_set():
            try:
                return self._stream.write(text)
            except (OSError, ValueError):  # EIO: hung up; ValueError: closed
                self.gone.set()
        return len(text)

    def flush(self) -> None:
        if not self.gone.is_set():
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self.gone.set()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return not self.gone.is_set() and self._stream.isatty()


class HangupTolerantDriver(LinuxDriver):
    """Textual's Linux driver, minus the crashes a hung-up terminal would cause."""

    def __init__(self, app: Any, **options: Any) -> None:
        super().__init__(app, **options)
        self.output = TerminalOutput(self._file)
        # Textual types its file as a text file; TerminalOutput stands in for one.
        self._file = self.output  # type: ignore[assignment]
        _DRIVERS.add(self)

    def run_input_thread(self) -> None:
        try:
            super().run_input_thread()
        except OSError:
            if not self.output.gone.is_set():
                raise
            # The terminal hung up under a read: nothing more will come from it.

    def terminal_gone(self) -> None:
        """Drop all output, and stop reading the terminal (within the input thread's 0.1 s
        poll)."""
        self.output.cut()
        self.exit_event.set()


def cut_off_terminal() -> None:
    """The terminal hung up: drop all output to it, stop reading it, and point stdin, stdout
    and stderr at /dev/null (until `continue_headless` points them at the run's log)."""
    for driver in list(_DRIVERS):
        driver.terminal_gone()
    detach_from_terminal(None)


class HangupHandler:
    """Runs in the SIGHUP handler, on the main thread between two bytecodes: only sets flags,
    moves file descriptors, and schedules the app's exit on its loop."""

    def __init__(self, app: StudioApp, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self.happened = False

    def __call__(self) -> None:
        self.happened = True
        cut_off_terminal()
        with contextlib.suppress(RuntimeError):  # the loop is closed: the app has gone
            self.loop.call_soon_threadsafe(self.app.terminal_hung_up)


class TerminateHandler:
    """SIGTERM (kill, systemd, a scheduler's preemption) while the studio is open: a run this
    process trains stops after its step and saves, as on "stop and quit", and the studio
    leaves. A second SIGTERM ends the process at once (the default action)."""

    def __init__(self, app: StudioApp, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop

    def __call__(self, signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if _local_run(self.app) is not None and self.app.runs.control is not None:
            self.app.runs.control.stop()  # a run attached to goes on in its own process
        with contextlib.suppress(RuntimeError):  # the loop is closed: the app has gone
            self.loop.call_soon_threadsafe(self.app.leave, "stop")


def run_app_in_terminal(app: StudioApp) -> int:
    """Run `app` in this terminal; returns the exit status once the app — and any run it
    left going — has ended. Call from the main thread, on a POSIX system."""
    app.driver_class = HangupTolerantDriver
    loop = asyncio.new_event_loop()
    hangup = HangupHandler(app, loop)
    previous = on_hangup(hangup)
    previous_terminate = signal.signal(signal.SIGTERM, TerminateHandler(app, loop))
    try:
        result = app.run(loop=loop)
        # Textual's suspend / resume handlers would restart a closed app.
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        signal.signal(signal.SIGCONT, signal.SIG_DFL)
        if hangup.happened and app.leaving is None:
            app.leaving = "hangup"  # the terminal hung up as the app was exiting anyway
        code = result if isinstance(result, int) else (app.return_code or 0)
        return _after_exit(app, loop, code)
    finally:
        with contextlib.suppress(Exception):
            loop.close()
        if not hangup.happened:
            signal.signal(signal.SIGHUP, previous)
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, previous_terminate)


def _after_exit(app: StudioApp, loop: asyncio.AbstractEventLoop, code: int) -> int:
    def wait_for_workers() -> None:
        # The trainer runs on a thread worker, that is, in the loop's default executor.
        loop.run_until_complete(loop.shutdown_default_executor())

    monitor = _local_run(app)
    going = monitor is not None and monitor.view().finished is None
    # An app that ended any other way (a crash) with a run going leaves it going, too.
    how = app.leaving or ("keep" if going else None)
    if monitor is not None and (how == "stop" or (how == "keep" and not going)):
        if going:
            print("stopping the run at the end of this step and saving the adapter…", flush=True)
        try:
            wait_for_workers()
        except KeyboardInterrupt:
            # Impatient: leave without the final save; complete checkpoints stay as they are.
            print("interrupted: not waiting for the adapter; finished checkpoints are kept")
            return 130
        finished = monitor.view().finished
        if finished is not None:
            where = app.services.display(finished.adapter_dir or finished.run_dir)
            print(f"run {finished.state.value} after {finished.steps} steps; saved to {where}")
        return _exit_status(monitor)
    if monitor is None or not going or how is None:
        if how == "hangup":
            cut_off_terminal()  # a last print must not fail on the dead terminal
        wait_for_workers()
        return code
    run_dir = monitor.run_dir
    if how == "keep":
        print(keep_running_message(app, run_dir), flush=True)
        control = app.runs.control
        if control is not None:
            # Ctrl-C in the terminal the process still belongs to: stop (and save) the run.
            signal.signal(signal.SIGINT, lambda signum, frame: control.stop())
        note = "the studio quit and left the run going headless"
    else:
        note = "terminal hung up: training goes on headless"
    if app.runs.control is not None:
        # SIGTERM (kill, systemd, a scheduler's preemption): stop after the step and save,
        # as `ftstudio train` does, instead of dying with an unfinished checkpoint.
        stopping = app.runs.control
        signal.signal(signal.SIGTERM, lambda signum, frame: stopping.stop())
    if run_dir:
        _log(Path(run_dir), f"{note} (pid {os.getpid()}); ftstudio runs follow {run_dir}")
    continue_headless(wait_for_workers, Path(run_dir) / "log.txt" if run_dir else None)
    return _exit_status(monitor)


def _local_run(app: StudioApp) -> RunMonitor | None:
    """The monitor of the run this process trains (not of one attached to), if any."""
    if app.runs.monitor is None:
        return None
    if app.runs.attached is not None and app.runs.attached.monitor is app.runs.monitor:
        return None
    return app.runs.monitor


def _exit_status(monitor: RunMonitor) -> int:
    finished = monitor.view().finished
    ok = finished is not None and finished.state in (RunState.FINISHED, RunState.STOPPED)
    return 0 if ok else 1


def keep_running_message(app: StudioApp, run_dir: str | None) -> str:
    """What the terminal shows when the studio quits and leaves its run going."""
    services = app.services
    where = services.display(run_dir) if run_dir else None
    runs = services.display(services.resolve(app.studio.config.output.runs_dir))
    name = Path(run_dir).name if run_dir else "the run"
    follow = f"ftstudio runs follow {where}" if where else f"ftstudio runs --runs-dir {runs}"
    stop = f"ftstudio runs control {where} stop" if where else "ftstudio runs control RUN stop"
    return "\n".join(
        [
            f"ftstudio: {name} goes on training in this process (pid {os.getpid()}) until it "
            f"ends, writing to {where or 'a new folder in ' + runs}.",
            f"  attach to it:  ftstudio, then Runs (key 5) and a;  or: {follow}",
            f"  stop it:       {stop}  (or Ctrl-C here)",
            "This terminal may be closed. To get the prompt back now: Ctrl-Z, then bg.",
        ]
    )


def _log(run_dir: Path, text: str) -> None:
    from studio.engine.run_dir import RunDirectory

    with contextlib.suppress(OSError):
        RunDirectory(run_dir).log(text, "warning")
