"""A training session run headless in this terminal: the progress line, and the signals that
stop it (Ctrl-C, SIGTERM) or leave it training when the terminal hangs up. `ftstudio train`
and `ftstudio runs triage --relaunch` run their sessions through it."""

from __future__ import annotations

import _thread
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

from studio.engine.control import TrainingControl
from studio.engine.events import (
    EventBus,
    LogLine,
    PreparationProgress,
    RunError,
    RunEvent,
    RunFinished,
    RunState,
    StateChanged,
    StepMetrics,
    TelemetryEvent,
)
from studio.formatting import format_duration, format_loss, format_rate
from studio.terminal_text import printable, write_control


def progress_line(event: StepMetrics, width: int = 24) -> str:
    share = event.step / event.max_steps if event.max_steps else 0.0
    filled = round(share * width)
    bar = "#" * filled + "." * (width - filled)
    loss = format_loss(event.loss)
    rate = f"{event.tokens_per_second:,.0f} tok/s" if event.tokens_per_second else "- tok/s"
    lr = format_rate(event.learning_rate)
    elapsed = format_duration(event.elapsed_seconds)
    eta = format_duration(event.eta_seconds)
    return (
        f"[{bar}] {event.step}/{event.max_steps} {share:4.0%}  loss {loss}  lr {lr}  {rate}  "
        f"elapsed {elapsed}  ETA {eta}"
    )


class ConsoleProgress:
    """Prints run events: one rewritten progress line on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.live = self.stream.isatty()
        self._line_open = False
        self._memory = ""
        from studio.telemetry.memory_warnings import MemoryWarningPolicy

        self._memory_warnings = MemoryWarningPolicy()  # the same episodes the TUI tells
        # Telemetry arrives on the sampler's thread, steps on the trainer's.
        self._lock = threading.Lock()
        # Set (without a lock: from a signal handler) once the terminal has hung up.
        self.muted = False

    def __call__(self, event: RunEvent) -> None:
        if self.muted:
            return
        with self._lock:
            self._handle(event)

    def _handle(self, event: RunEvent) -> None:
        if isinstance(event, TelemetryEvent):
            from studio.telemetry import format_memory_status
            from studio.telemetry.snapshots import snapshot_from_record

            snapshot = snapshot_from_record(event.snapshot)
            if snapshot is None:
                return  # a damaged telemetry record: nothing to show
            self._memory = format_memory_status(snapshot)
            for warning in self._memory_warnings.observe(snapshot):
                if not self.quiet:
                    self._print(f"memory warning: {warning.message}")
        elif isinstance(event, StepMetrics):
            if not self.quiet:
                line = progress_line(event)
                if self._memory:
                    line += "  |  " + self._memory
                self._progress(line)
        elif isinstance(event, PreparationProgress):
            if not self.quiet:
                self._progress(event.text)
        elif isinstance(event, RunError):
            self._print(f"error ({event.kind}): {event.message}")
            for advice in event.advice:
                self._print(f"  try: {advice}")
        elif isinstance(event, RunFinished):
            self._print(self._summary(event))
        elif self.quiet:
            return
        elif isinstance(event, LogLine):
            self._print(event.text)
        elif isinstance(event, StateChanged) and event.state in (
            RunState.PAUSED,
            RunState.STOPPING,
        ):
            self._print(f"{event.state.value}: {event.message}")

    def _summary(self, event: RunFinished) -> str:
        loss = format_loss(event.final_loss)
        lines = [
            f"run {event.state.value} after {event.steps} steps in "
            f"{format_duration(event.duration_seconds)}; final loss {loss}",
            f"run directory: {event.run_dir}",
        ]
        if event.best_eval_loss is not None:
            lines.insert(1, f"best eval loss {event.best_eval_loss:.4f}")
        if event.adapter_dir:
            lines.append(f"adapter: {event.adapter_dir}")
        return "\n".join(lines)

    def _progress(self, text: str) -> None:
        if self.live:
            width = shutil.get_terminal_size().columns
            write_control(self.stream, "\r\x1b[2K")
            self.stream.write(printable(text)[: width - 1])
            self._line_open = True
        else:
            self.stream.write(printable(text) + "\n")
        self.stream.flush()

    def _print(self, text: str) -> None:
        if self._line_open:
            self.stream.write("\n")
            self._line_open = False
        self.stream.write(printable(text) + "\n")
        self.stream.flush()


# Seconds a run has, after the first SIGTERM, to finish its step and save before it aborts;
# an environment setting so that a job script can match its scheduler's grace period.
STOP_DEADLINE_VARIABLE = "FTSTUDIO_STOP_DEADLINE"
DEFAULT_STOP_DEADLINE = 300.0


def stop_deadline() -> float | None:
    """The SIGTERM deadline in seconds (FTSTUDIO_STOP_DEADLINE; 0 or less: none)."""
    text = os.environ.get(STOP_DEADLINE_VARIABLE, "").strip()
    try:
        seconds = float(text) if text else DEFAULT_STOP_DEADLINE
    except ValueError:
        seconds = DEFAULT_STOP_DEADLINE
    return seconds if seconds > 0 else None


def run_session_in_terminal(
    make_session: Callable[[EventBus, TrainingControl], Any], quiet: bool
) -> int:
    """Run a session with a progress line: Ctrl-C or SIGTERM (kill, systemd, Slurm and
    Kubernetes preemption) stops it after the current step and saves; a second one, or the
    SIGTERM deadline, aborts. A hung-up terminal (SIGHUP) leaves it training headless."""
    bus = EventBus()
    console = ConsoleProgress(quiet=quiet)
    bus.subscribe(console)
    control = TrainingControl()
    session = make_session(bus, control)

    def on_interrupt(signum: int, frame: object) -> None:
        if control.stop_requested:
            raise KeyboardInterrupt
        if signum == signal.SIGTERM:
            deadline = stop_deadline()
            within = f" (aborting after {deadline:.0f} s)" if deadline else ""
            print(
                f"\nterminated: stopping after this step and saving{within}; "
                "a second SIGTERM aborts",
                file=sys.stderr,
                flush=True,
            )
            if deadline:
                # The deadline delivers a second SIGTERM to this handler, on the main thread.
                timer = threading.Timer(deadline, _thread.interrupt_main, (signal.SIGTERM,))
                timer.daemon = True
                timer.start()
        else:
            print("\nstopping after this step and saving; press Ctrl-C again to abort", flush=True)
        control.stop()

    def on_terminal_hangup() -> None:
        # A dropped SSH connection: the run goes on headless, writing to its run directory.
        from studio.engine.detach import detach_from_terminal

        console.muted = True
        run = session.run_dir
        detach_from_terminal(run.log_path if run else None)
        where = run.path if run else "its run directory"
        note = f"terminal hung up: training goes on headless; ftstudio runs follow {where}"
        # Logged from another thread: this handler may have interrupted the run's own logging.
        threading.Thread(target=session.log, args=(note, "warning"), daemon=True).start()

    from studio.engine.detach import on_hangup

    previous = signal.signal(signal.SIGINT, on_interrupt)
    previous_terminate = signal.signal(signal.SIGTERM, on_interrupt)
    previous_hangup = on_hangup(on_terminal_hangup)
    try:
        result = session.run()
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_terminate)
        signal.signal(signal.SIGHUP, previous_hangup)
    return 0 if result.state in (RunState.FINISHED, RunState.STOPPED) else 1
