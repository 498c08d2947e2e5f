"""Everything the Train screen shows about one run, recorded as the engine publishes it.

`record()` runs on the trainer thread (and the telemetry thread); the screen reads copies on
the UI thread. Series are `deque(maxlen=...)` ring buffers, so memory stays bounded however
long a run lasts. `version` grows with every change, so a redraw can be skipped when nothing
happened since the last one.

Telemetry feeds the memory panel: memory series over time (`memory_view()`, copied only when
the panel draws, not on every `view()`), utilisation and PCIe ring buffers, and the memory
warnings, each an episode that starts when its condition does and ends when it clears, so the
UI tells the user once per episode (`take_new_warnings()`), not once per sample.
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
from studio.telemetry.alerts import DEFAULT_LOW_FREE_FRACTION
from studio.telemetry.snapshots import GpuSnapshot, PagedMemory, TelemetrySnapshot
from studio.telemetry.status_line import GIB, MIB, gib

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

# Free GPU memory under max(LOW_FREE_FRACTION of the total, LOW_FREE_MIN_BYTES) is a warning,
# which clears once free memory is back above LOW_FREE_CLEAR_FACTOR times that (so a run that
# hovers at the threshold does not warn on every other sample).
LOW_FREE_FRACTION = DEFAULT_LOW_FREE_FRACTION
LOW_FREE_MIN_BYTES = GIB
LOW_FREE_CLEAR_FACTOR = 1.25
# Spill estimates below this are noise in NVML's numbers, not pages on the host.
SPILL_NOISE_BYTES = 64 * MIB
LOW_GPU_MEMORY = "low_gpu_memory"
PAGED_SPILL = "paged_spill"


def low_free_threshold(total_bytes: int) -> int:
    """Free GPU memory under this is a warning: 5 % of the total or 1 GiB, whichever is larger."""
    return max(int(total_bytes * LOW_FREE_FRACTION), LOW_FREE_MIN_BYTES)


@dataclass(frozen=True)
class MemoryWarning:
    """One episode of a memory condition; the same `episode` number for as long as it lasts."""

    kind: str  # LOW_GPU_MEMORY or PAGED_SPILL
    episode: int  # counts up from 1 within a run
    tag: str  # a few words, for a line that holds more than one warning
    summary: str  # one short line for the panel
    message: str  # the longer notification


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
        self._warnings = _WarningTracker()
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
        try:
            snapshot = TelemetrySnapshot.from_dict(event.snapshot)
        except (KeyError, TypeError, ValueError):
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
            self._warnings.update(gpu, paged)
        else:
            host = snapshot.host
            values = {MEMORY_RAM_USED: host.ram_used_bytes, MEMORY_RSS: host.process_rss_bytes}
            self._memory_limit = host.ram_total_bytes or self._memory_limit
            utilisation = host.cpu_percent
        if utilisation is not None:
            self._utilisation.append(float(utilisation))
        x = self._elapsed(snapshot.time)
        for name, value in values.items():
            if value is not None:
                series = self._memory.setdefault(name, deque(maxlen=MEMORY_HISTORY))
                series.append((x, float(value)))

    def _run_gpu(self, snapshot: TelemetrySnapshot) -> GpuSnapshot | None:
        """The GPU this run uses: where torch holds memory or paged state is, else the one
        shown so far, else the first. A change of GPU (or to the host view) starts the series
        afresh."""
        holding = [item.gpu_index for item in snapshot.torch_memory if item.reserved_bytes]
        holding += [item.gpu_index for item in snapshot.paged if item.paged_bytes]
        in_use = [index for index in holding if index is not None and snapshot.gpu(index)]
        if in_use:
            index: int | None = in_use[0]
        elif self._memory_gpu is not None and snapshot.gpu(self._memory_gpu) is not None:
            index = self._memory_gpu
        else:
            index = snapshot.gpus[0].index if snapshot.gpus else None
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


class _WarningTracker:
    """Memory warning episodes: low free GPU memory, and paged state spilling to the host."""

    def __init__(self) -> None:
        self._active: dict[str, MemoryWarning] = {}
        self._episodes = 0
        self._unannounced: set[int] = set()
        self._last_spilled = 0

    def active(self) -> tuple[MemoryWarning, ...]:
        return tuple(self._active.values())

    def take_new(self) -> tuple[MemoryWarning, ...]:
        new = tuple(item for item in self._active.values() if item.episode in self._unannounced)
        self._unannounced.clear()
        return new

    def update(self, gpu: GpuSnapshot, paged: PagedMemory | None) -> None:
        self._check_free(gpu)
        self._check_spill(gpu, paged)

    def _check_free(self, gpu: GpuSnapshot) -> None:
        total, free = gpu.memory_total_bytes, gpu.free_bytes
        if not total or free is None:
            return  # not measured this time: the episode neither starts nor ends
        threshold = low_free_threshold(total)
        limit = threshold * LOW_FREE_CLEAR_FACTOR if LOW_GPU_MEMORY in self._active else threshold
        if free >= limit:
            self._end(LOW_GPU_MEMORY)
            return
        self._hold(
            LOW_GPU_MEMORY,
            "low memory",
            f"low memory: {gib(free)} GiB free, under {gib(threshold)}",
            f"GPU{gpu.index} has {gib(free)} GiB free of {gib(total)} GiB, under "
            f"{gib(threshold)} GiB: the run may stop with out of memory. A smaller batch or "
            "sequence length, gradient checkpointing or 4-bit loading needs less.",
        )

    def _check_spill(self, gpu: GpuSnapshot, paged: PagedMemory | None) -> None:
        spilled = paged.spilled_bytes if paged is not None else 0  # no paged state: none
        if spilled is None:
            return  # no estimate this time
        rising = spilled > self._last_spilled
        self._last_spilled = spilled
        if spilled <= SPILL_NOISE_BYTES:
            self._end(PAGED_SPILL)
        elif rising or PAGED_SPILL in self._active:
            self._hold(
                PAGED_SPILL,
                f"spilling ~{gib(spilled)} GiB",
                f"paged optimizer spilling: ~{gib(spilled)} GiB on the host",
                f"GPU{gpu.index}: the paged optimizer's state is spilling to host memory "
                f"(~{gib(spilled)} of {gib(paged.paged_bytes if paged else 0)} GiB, an "
                "estimate); steps slow "
                "down while pages move over PCIe. Free GPU memory (a smaller batch or "
                "sequence length) to keep it on the GPU.",
            )

    def _hold(self, kind: str, tag: str, summary: str, message: str) -> None:
        current = self._active.get(kind)
        if current is None:
            self._episodes += 1
            self._unannounced.add(self._episodes)
            episode = self._episodes
        else:
            episode = current.episode
        self._active[kind] = MemoryWarning(kind, episode, tag, summary, message)

    def _end(self, kind: str) -> None:
        ended = self._active.pop(kind, None)
        if ended is not None:
            self._unannounced.discard(ended.episode)
