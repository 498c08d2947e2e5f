"""Everything the Train screen shows about one run, recorded as the engine publishes it.

`record()` runs on the trainer thread (and the telemetry thread); the screen reads copies on
the UI thread. Series are `deque(maxlen=...)` ring buffers, so memory stays bounded however
long a run lasts. `version` grows with every change, so a redraw can be skipped when nothing
happened since the last one.

Telemetry feeds the memory panel: memory series over time (`memory_view()`, copied only when
the panel draws, not on every `view()`), utilisation and PCIe ring buffers, and the memory
warnings of the one policy the headless run prints too (`studio.telemetry.memory_warnings`),
each an episode, so the UI tells the user once per episode (`take_new_warnings()`).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from dataclasses import dataclass, field

from studio.engine.events import (
    EvalMetrics,
    LogLine,
    PreparationProgress,
    RunError,
    RunEvent,
    RunFinished,
    RunState,
    SampleGenerations,
    StateChanged,
    StepMetrics,
    TelemetryEvent,
)
from studio.telemetry.memory_warnings import MemoryWarning, MemoryWarningPolicy
from studio.telemetry.snapshots import GpuSnapshot, TelemetrySnapshot, snapshot_from_record

SERIES_LENGTH = 4000
LOG_LENGTH = 1000
MEMORY_HISTORY = 3600  # memory samples kept: an hour at the default one a second
GAUGE_HISTORY = 300  # utilisation and PCIe samples kept for the sparklines

Point = tuple[float, float]

# Memory series, in drawing order (a later line draws over an earlier one). With a GPU:
MEMORY_USED = "used"  # NVML: the whole device, every process, the driver's own
MEMORY_RESERVED = "reserved"  # torch's caching allocator holds this from CUDA
MEMORY_ALLOCATED = "allocated"  # ... and hands this out to tensors
MEMORY_PAGED = "paged"  # paged optimizer state estimated resident on the GPU
MEMORY_SPILLED = "spilled"  # paged optimizer state estimated on the host
# Without a GPU:
MEMORY_RAM_USED = "RAM used"
MEMORY_RSS = "RSS"

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
    telemetry: TelemetrySnapshot | None
    warnings: tuple[MemoryWarning, ...]
    error: RunError | None
    finished: RunFinished | None
    run_dir: str | None
    log_total: int
    new_log_lines: list[LogLine] = field(default_factory=list)
    samples: tuple[SampleGenerations, ...] = ()
    """The first and the latest answers to the sample prompts (watch the model learn)."""


@dataclass(frozen=True)
class MemoryView:
    """What the memory panel draws: series over time, gauges and warnings, copied at once."""

    version: int  # telemetry samples recorded so far: unchanged means nothing to redraw
    snapshot: TelemetrySnapshot | None
    gpu_index: int | None  # the GPU the series are about; None: host memory (no GPU)
    series: dict[str, list[Point]]  # name -> (seconds since the first sample, bytes)
    limit_bytes: int | None  # the GPU's total memory, or the host's RAM
    utilisation: list[float]  # GPU utilisation %, or host CPU % without a GPU
    pcie: list[float]  # PCIe RX + TX bytes per second
    warnings: tuple[MemoryWarning, ...]


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
        self._telemetry: TelemetrySnapshot | None = None
        self._telemetry_count = 0
        self._memory: dict[str, deque[Point]] = {}
        self._memory_gpu: int | None = None
        self._memory_limit: int | None = None
        self._utilisation: deque[float] = deque(maxlen=GAUGE_HISTORY)
        self._pcie: deque[float] = deque(maxlen=GAUGE_HISTORY)
        self._time_origin: float | None = None
        self._last_x = 0.0
        self._warnings = MemoryWarningPolicy()
        self._log: deque[LogLine] = deque(maxlen=log_length)
        self._log_total = 0
        self._error: RunError | None = None
        self._finished: RunFinished | None = None
        self._samples: list[SampleGenerations] = []
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
            elif isinstance(event, PreparationProgress):
                self._state_detail = event.text  # shown under the state while it prepares
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
            elif isinstance(event, SampleGenerations):
                # The first answers (before much training) and the latest ones: a replay
                # may bring the same step twice, the later one counts.
                kept = [s for s in self._samples[:1] if s.step != event.step]
                self._samples = [*kept, event]
            elif isinstance(event, RunFinished):
                self._finished = event
                self._run_dir = event.run_dir or self._run_dir

    def _record_telemetry(self, event: TelemetryEvent) -> None:
        snapshot = snapshot_from_record(event.snapshot)
        if snapshot is None:
            return
        self._telemetry = snapshot
        self._telemetry_count += 1
        gpu = self._run_gpu(snapshot)
        values: dict[str, float | None]
        if gpu is not None:
            torch_memory = snapshot.torch_for_gpu(gpu.index)
            paged = snapshot.paged_for_gpu(gpu.index)
            values = {MEMORY_USED: gpu.memory_used_bytes}
            if torch_memory is not None:
                values[MEMORY_RESERVED] = torch_memory.reserved_bytes
                values[MEMORY_ALLOCATED] = torch_memory.allocated_bytes
            if paged is not None and paged.paged_bytes > 0:
                values[MEMORY_PAGED] = paged.resident_bytes
                values[MEMORY_SPILLED] = paged.spilled_bytes
            self._memory_limit = gpu.memory_total_bytes or self._memory_limit
            utilisation = gpu.utilization_percent
            rx, tx = gpu.pcie_rx_bytes_per_second, gpu.pcie_tx_bytes_per_second
            if rx is not None or tx is not None:
                self._pcie.append(float((rx or 0) + (tx or 0)))
        else:
            host = snapshot.host
            values = {MEMORY_RAM_USED: host.ram_used_bytes, MEMORY_RSS: host.process_rss_bytes}
            self._memory_limit = host.ram_total_bytes or self._memory_limit
            utilisation = host.cpu_percent
        if utilisation is not None:
            self._utilisation.append(float(utilisation))
        self._warnings.observe(snapshot)
        x = self._elapsed(snapshot.time)
        for name, value in values.items():
            if value is not None:
                series = self._memory.setdefault(name, deque(maxlen=MEMORY_HISTORY))
                series.append((x, float(value)))

    def _run_gpu(self, snapshot: TelemetrySnapshot) -> GpuSnapshot | None:
        """The GPU this run uses: where torch holds memory or paged state is, else the one
        shown so far, else the first. A change of GPU (or to the host view) starts the series
        afresh."""
        index = snapshot.run_gpu_index(self._memory_gpu)
        if index != self._memory_gpu:
            self._memory.clear()
            self._utilisation.clear()
            self._pcie.clear()
            self._memory_limit = None
            self._memory_gpu = index
        return None if index is None else snapshot.gpu(index)

    def _elapsed(self, when: float) -> float:
        """Seconds since the run's first sample. A clock that stands still or goes back (a
        replay, a scripted run, an NTP step) counts as one second, so x always grows."""
        if self._time_origin is None:
            self._time_origin = when
            self._last_x = 0.0
            return 0.0
        x = when - self._time_origin
        if x <= self._last_x:
            x = self._last_x + 1.0
        self._last_x = x
        return x

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
                telemetry=self._telemetry,
                warnings=self._warnings.active(),
                error=self._error,
                finished=self._finished,
                run_dir=self._run_dir,
                log_total=self._log_total,
                new_log_lines=new_lines,
                samples=tuple(self._samples),
            )

    def memory_view(self) -> MemoryView:
        """A copy of the memory panel's data (a few thousand points: call it to draw)."""
        with self._lock:
            return MemoryView(
                version=self._telemetry_count,
                snapshot=self._telemetry,
                gpu_index=self._memory_gpu,
                series={name: list(points) for name, points in self._memory.items()},
                limit_bytes=self._memory_limit,
                utilisation=list(self._utilisation),
                pcie=list(self._pcie),
                warnings=self._warnings.active(),
            )

    def take_new_warnings(self) -> tuple[MemoryWarning, ...]:
        """Warnings that started since the last call and still hold: notify each once."""
        with self._lock:
            return self._warnings.take_new()

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
