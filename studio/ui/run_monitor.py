"""Everything the Train screen shows about one run, recorded as the engine publishes it.

`record()` runs on the trainer thread (and the telemetry thread); the screen reads copies on
the UI thread. Series are `deque(maxlen=...)` ring buffers, so memory stays bounded however
long a run lasts. `version` grows with every change, so a redraw can be skipped when nothing
happened since the last one.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from dataclasses import dataclass, field

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
from studio.telemetry.snapshots import TelemetrySnapshot

SERIES_LENGTH = 4000
LOG_LENGTH = 1000

Point = tuple[float, float]

# Memory series shown on the memory plot, in drawing order.
MEMORY_USED = "GPU used"
MEMORY_ALLOCATED = "torch allocated"
MEMORY_RESERVED = "torch reserved"
MEMORY_RSS = "process RSS"

_RUN_DIRECTORY = re.compile(r"^run directory (?P<path>.+)$")


@dataclass(frozen=True)
class MonitorView:
    """A consistent copy of the monitor for one redraw."""

    version: int
    state: RunState | None
    state_detail: str
    latest: StepMetrics | None
    train_loss: list[Point]
    eval_loss: list[Point]
    learning_rate: list[Point]
    memory: dict[str, list[Point]]
    memory_unit_is_gpu: bool
    telemetry: TelemetrySnapshot | None
    error: RunError | None
    finished: RunFinished | None
    run_dir: str | None
    log_total: int
    new_log_lines: list[LogLine] = field(default_factory=list)


class RunMonitor:
    """Thread-safe record of one run: metrics, telemetry, log, state, failure, summary."""

    def __init__(self, series_length: int = SERIES_LENGTH, log_length: int = LOG_LENGTH) -> None:
        self._lock = threading.Lock()
        self.version = 0
        self._state: RunState | None = None
        self._state_detail = ""
        self._latest: StepMetrics | None = None
        self._train_loss: deque[Point] = deque(maxlen=series_length)
        self._eval_loss: deque[Point] = deque(maxlen=series_length)
        self._learning_rate: deque[Point] = deque(maxlen=series_length)
        self._memory: dict[str, deque[Point]] = {}
        self._memory_is_gpu = False
        self._series_length = series_length
        self._telemetry: TelemetrySnapshot | None = None
        self._log: deque[LogLine] = deque(maxlen=log_length)
        self._log_total = 0
        self._error: RunError | None = None
        self._finished: RunFinished | None = None
        self._run_dir: str | None = None
        self._notified = threading.Event()

    # ---------------------------------------------------------------- notifications

    def claim_notification(self) -> bool:
        """True when the UI has no unread news yet: the caller should tell it (once)."""
        with self._lock:
            if self._notified.is_set():
                return False
            self._notified.set()
            return True

    def notification_read(self) -> None:
        """The UI took the news; the next change is worth a message again."""
        self._notified.clear()

    # ---------------------------------------------------------------- writing (any thread)

    def record(self, event: RunEvent) -> None:
        with self._lock:
            self.version += 1
            if isinstance(event, StepMetrics):
                self._latest = event
                if event.loss is not None:
                    self._train_loss.append((event.step, event.loss))
                if event.learning_rate is not None:
                    self._learning_rate.append((event.step, event.learning_rate))
            elif isinstance(event, EvalMetrics):
                if event.loss is not None:
                    self._eval_loss.append((event.step, event.loss))
            elif isinstance(event, TelemetryEvent):
                self._record_telemetry(event)
            elif isinstance(event, LogLine):
                self._log.append(event)
                self._log_total += 1
            elif isinstance(event, StateChanged):
                self._state, self._state_detail = event.state, event.message
                match = _RUN_DIRECTORY.match(event.message)
                if match:
                    self._run_dir = match["path"]
            elif isinstance(event, RunError):
                self._error = event
                self._log.append(LogLine(text=f"{event.kind}: {event.message}", level="error"))
                for advice in event.advice:
                    self._log.append(LogLine(text=f"  try: {advice}", level="advice"))
                self._log_total += 1 + len(event.advice)
            elif isinstance(event, RunFinished):
                self._finished = event
                self._run_dir = event.run_dir or self._run_dir

    def _record_telemetry(self, event: TelemetryEvent) -> None:
        try:
            snapshot = TelemetrySnapshot.from_dict(event.snapshot)
        except (KeyError, TypeError, ValueError):
            return
        self._telemetry = snapshot
        step = float(self._latest.step if self._latest else 0)
        values: dict[str, float | None] = {}
        gpu = snapshot.gpus[0] if snapshot.gpus else None
        if gpu is not None:
            self._memory_is_gpu = True
            values[MEMORY_USED] = gpu.memory_used_bytes
            torch_memory = snapshot.torch_for_gpu(gpu.index)
            if torch_memory is not None:
                values[MEMORY_ALLOCATED] = torch_memory.allocated_bytes
                values[MEMORY_RESERVED] = torch_memory.reserved_bytes
        else:
            values[MEMORY_RSS] = snapshot.host.process_rss_bytes
        for name, value in values.items():
            if value is None:
                continue
            series = self._memory.setdefault(name, deque(maxlen=self._series_length))
            series.append((step, float(value)))

    # ---------------------------------------------------------------- reading (UI thread)

    def view(self, log_seen: int = 0) -> MonitorView:
        """A copy of everything; `new_log_lines` are those after the first `log_seen`."""
        with self._lock:
            unseen = min(self._log_total - log_seen, len(self._log))
            new_lines = list(self._log)[len(self._log) - unseen :] if unseen > 0 else []
            return MonitorView(
                version=self.version,
                state=self._state,
                state_detail=self._state_detail,
                latest=self._latest,
                train_loss=list(self._train_loss),
                eval_loss=list(self._eval_loss),
                learning_rate=list(self._learning_rate),
                memory={name: list(points) for name, points in self._memory.items()},
                memory_unit_is_gpu=self._memory_is_gpu,
                telemetry=self._telemetry,
                error=self._error,
                finished=self._finished,
                run_dir=self._run_dir,
                log_total=self._log_total,
                new_log_lines=new_lines,
            )

    @property
    def state(self) -> RunState | None:
        with self._lock:
            return self._state

    @property
    def latest(self) -> StepMetrics | None:
        with self._lock:
            return self._latest

    @property
    def run_dir(self) -> str | None:
        with self._lock:
            return self._run_dir
