"""Attach to a run from its directory: replay its whole history, then follow it live.

A run trained by another process (a headless `ftstudio train`, or an `ftstudio` whose terminal
went away) writes everything to its run directory as it happens. `RunFollower` reads it back as
the same typed events the engine publishes — `StepMetrics` and `EvalMetrics` from
metrics.jsonl, `TelemetryEvent` from telemetry.jsonl, `LogLine` and `StateChanged` from
log.txt — so the Train screen shows an attached run with the code it uses for its own.
When status.json reaches an end state (or the training process is gone: `interrupted`) the
follower sends a `RunError` if the run failed and a closing `RunFinished`, then stops.

Each poll reads only what was appended since the last one (and only whole lines), so following
a long run costs a few stats per poll. After a resume, metrics.jsonl is rewritten without the
steps that are trained again; a follower then reads it from the start, so a step may come twice
(the later value is the one that counts).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from studio.engine.events import (
    EvalMetrics,
    LogLine,
    RunError,
    RunEvent,
    RunFinished,
    RunState,
    StateChanged,
    StepMetrics,
    TelemetryEvent,
)
from studio.engine.liveness import INTERRUPTED, TERMINAL_STATES, effective_state
from studio.engine.run_dir import RunDirectory
from studio.engine.samples import SAMPLES_FILE, sample_event
from studio.run_files import int_field, str_field, str_list_field

_STEP_FIELDS = {
    "step",
    "max_steps",
    "epoch",
    "loss",
    "learning_rate",
    "grad_norm",
    "tokens_per_second",
    "elapsed_seconds",
    "eta_seconds",
}
_NOT_EXTRA = _STEP_FIELDS | {"type", "time"}


class _Tail:
    """New whole lines of a growing file; starts over when the file is replaced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.inode: int | None = None
        self.partial = b""

    def read_lines(self) -> list[str]:
        try:
            info = self.path.stat()
        except OSError:
            return []
        if self.inode is not None and (info.st_ino != self.inode or info.st_size < self.offset):
            self.offset, self.partial = 0, b""
        self.inode = info.st_ino
        if info.st_size == self.offset:
            return []
        try:
            with self.path.open("rb") as stream:
                stream.seek(self.offset)
                data = stream.read(info.st_size - self.offset)
        except OSError:
            return []
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in lines if line.strip()]


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def metric_event(record: dict[str, Any], started: float | None = None) -> RunEvent | None:
    """The event a metrics.jsonl record was written from."""
    when = _float(record.get("time")) or time.time()
    step = int_field(record, "step", 0) or 0
    extra = {
        key: number
        for key, value in record.items()
        if key not in _NOT_EXTRA and (number := _float(value)) is not None
    }
    if record.get("type") == "eval":
        return EvalMetrics(
            step=step,
            epoch=_float(record.get("epoch")) or 0.0,
            loss=_float(record.get("loss")),
            extra=extra,
            time=when,
        )
    if record.get("type") != "train":
        return None
    elapsed = _float(record.get("elapsed_seconds"))
    if elapsed is None:
        elapsed = max(when - started, 0.0) if started else 0.0
    return StepMetrics(
        step=step,
        max_steps=int_field(record, "max_steps", 0) or 0,
        epoch=_float(record.get("epoch")) or 0.0,
        loss=_float(record.get("loss")),
        learning_rate=_float(record.get("learning_rate")),
        grad_norm=_float(record.get("grad_norm")),
        tokens_per_second=_float(record.get("tokens_per_second")),
        elapsed_seconds=elapsed,
        eta_seconds=_float(record.get("eta_seconds")),
        extra=extra,
        time=when,
    )


class RunFollower:
    """Replays a run directory and follows it.

    `poll()` returns the events since the last call (the first call: the whole history);
    `follow(on_event)` blocks, polling, until the run ends or `close()` is called;
    `start(on_event)` does that on a daemon thread. `on_event` gets events on that thread.
    """

    def __init__(self, run_dir: str | Path, *, poll_seconds: float = 0.5) -> None:
        self.run = RunDirectory(Path(run_dir).expanduser())
        self.poll_seconds = poll_seconds
        self._metrics = _Tail(self.run.metrics_path)
        self._telemetry = _Tail(self.run.telemetry_path)
        self._log = _Tail(self.run.log_path)
        self._samples = _Tail(self.run.path / SAMPLES_FILE)
        self._closed = threading.Event()
        self._log_day: datetime | None = None
        self._last_clock: str | None = None
        self.state: RunState | None = None
        self.finished: RunFinished | None = None
        self.thread: threading.Thread | None = None

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def done(self) -> bool:
        return self.finished is not None

    # ------------------------------------------------------------ reading

    def poll(self) -> list[RunEvent]:
        if self.done:
            return []
        # Status first: if it already says the run ended, every line it wrote is in the files.
        status = self.run.read_status()
        state = effective_state(status)
        started = _float(status.get("started"))
        events: list[RunEvent] = []
        for line in self._log.read_lines():
            event = self._log_event(line, started)
            if event is not None:
                events.append(event)
        for line in self._metrics.read_lines():
            record = _json(line)
            event = metric_event(record, started) if record else None
            if event is not None:
                events.append(event)
        for line in self._telemetry.read_lines():
            record = _json(line)
            if record:
                when = _float(record.get("time")) or time.time()
                events.append(TelemetryEvent(snapshot=record, time=when))
        for line in self._samples.read_lines():
            record = _json(line)
            sample = sample_event(record) if record else None
            if sample is not None:
                events.append(sample)
        if state in TERMINAL_STATES or state == INTERRUPTED:
            events.extend(self._ending(status, state))
        return events

    def _log_event(self, line: str, started: float | None) -> RunEvent | None:
        # "HH:MM:SS level   text", as RunDirectory.log writes it.
        clock, level, text = line[:8], line[9:16].strip() or "info", line[17:]
        when = self._log_time(clock, started)
        if text.startswith("state: "):
            value, _, message = text.removeprefix("state: ").partition(" ")
            try:
                state = RunState(value)
            except ValueError:
                return LogLine(text=text, level=level, time=when)
            self.state = state
            return StateChanged(state, message, time=when)
        return LogLine(text=text, level=level, time=when)

    def _log_time(self, clock: str, started: float | None) -> float:
        try:
            parsed = datetime.strptime(clock, "%H:%M:%S")
        except ValueError:
            return time.time()
        if self._log_day is None:
            origin = datetime.fromtimestamp(started) if started else datetime.now()
            self._log_day = origin.replace(hour=0, minute=0, second=0, microsecond=0)
        if self._last_clock is not None and clock < self._last_clock:
            self._log_day += timedelta(days=1)  # past midnight
        self._last_clock = clock
        moment = self._log_day.replace(hour=parsed.hour, minute=parsed.minute, second=parsed.second)
        return moment.timestamp()

    def _ending(self, status: dict[str, Any], state: str) -> list[RunEvent]:
        events: list[RunEvent] = []
        error = status.get("error") if isinstance(status.get("error"), dict) else None
        if state == INTERRUPTED:
            final = RunState.FAILED
            pid = status.get("pid")
            events.append(
                RunError(
                    kind="interrupted",
                    message=f"the process training this run (pid {pid}) is gone",
                    advice=(
                        "resume it from its last checkpoint: ftstudio train --resume "
                        f"{self.run.path}",
                    ),
                    step=int_field(status, "step"),
                )
            )
        else:
            final = RunState(state)
            if final is RunState.FAILED and error:
                events.append(
                    RunError(
                        kind=str(error.get("kind", "internal")),
                        message=str(error.get("message", "")),
                        advice=tuple(str_list_field(error, "advice")),
                        step=int_field(error, "step"),
                    )
                )
        if self.state is not final:
            events.append(StateChanged(final, f"after {int_field(status, 'step', 0)} steps"))
            self.state = final
        adapter = str_field(status, "adapter_dir")
        self.finished = RunFinished(
            state=final,
            run_dir=str(self.run.path),
            steps=int_field(status, "step", 0) or 0,
            final_loss=_float(status.get("final_loss")),
            best_eval_loss=_float(status.get("best_eval_loss")),
            adapter_dir=adapter if adapter and Path(adapter).exists() else None,
            duration_seconds=_float(status.get("duration_seconds")) or 0.0,
        )
        events.append(self.finished)
        return events

    def final_events(self) -> list[RunEvent]:
        """Only the run's ending (error, final state, RunFinished) when status.json has one,
        without its history: for a launcher that held the ending back until its group exited
        and the group's final word was written."""
        status = self.run.read_status()
        state = effective_state(status)
        if state in TERMINAL_STATES or state == INTERRUPTED:
            return self._ending(status, state)
        return []

    # ------------------------------------------------------------ following

    def follow(
        self,
        on_event: Callable[[RunEvent], None],
        *,
        timeout: float | None = None,
    ) -> RunFinished | None:
        """Deliver the history, then new events as they come, until the run ends (returns its
        `RunFinished`), `close()` is called or `timeout` passes (returns None)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for event in self.poll():
                if self._closed.is_set():
                    return None  # let go of: the rest of the history goes nowhere
                on_event(event)
            if self.done:
                return self.finished
            if deadline is not None and time.monotonic() >= deadline:
                return None
            if self._closed.wait(self.poll_seconds):
                return None

    def start(self, on_event: Callable[[RunEvent], None]) -> threading.Thread:
        """Follow on a daemon thread. Should reading the folder fail (a file another tool
        rewrote, say), `on_event` gets a `RunError` saying so instead of a thread that dies
        silently while the screen goes on saying "running"."""

        def follow_or_report() -> None:
            try:
                self.follow(on_event)
            except Exception as error:  # reported to the user (RunError), not swallowed
                on_event(
                    RunError(
                        kind="internal",
                        message=f"lost track of the run in {self.path}: {error}",
                        advice=(f"follow it with: ftstudio runs follow {self.path}",),
                    )
                )

        self.thread = threading.Thread(
            target=follow_or_report, name="ftstudio-follower", daemon=True
        )
        self.thread.start()
        return self.thread

    def close(self, wait: bool = True) -> None:
        """Stop following; `wait=False` returns at once (the thread ends within one poll)."""
        self._closed.set()
        if wait and self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=5)


def _json(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def replay_run(run_dir: str | Path) -> list[RunEvent]:
    """A run's history as events, without waiting (for a finished run: all of it)."""
    return RunFollower(run_dir).poll()
