"""The one memory-warning policy, used by the Train screen and the headless run alike.

Two conditions on the GPU a run uses (`TelemetrySnapshot.run_gpu_index`) are worth a warning:
free memory running low (the run may stop with out of memory), and a paged optimizer's state
spilling to host memory (steps slow down). Each is an episode that starts when its condition
does and ends when it clears, so the user is told once per episode, not once per poll:

- low memory starts under `low_free_threshold` (5 % of the GPU's memory, at least 1 GiB) and
  ends only above 1.25 times that, so a run hovering at the threshold does not warn on every
  other sample;
- a spill starts when the estimate rises past `SPILL_NOISE_BYTES` (smaller figures are noise in
  NVML's numbers) and lasts, falling or not, until it is back under that;
- a value not measured in a poll neither starts nor ends an episode.

`observe()` takes each snapshot and returns the warnings that started with it (the headless
progress prints those); `active()` is what holds now and `take_new()` what started since the
last call and still holds (the TUI's panel and notifications).
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.formatting import GIB, MIB, gib
from studio.telemetry.snapshots import GpuSnapshot, PagedMemory, TelemetrySnapshot

LOW_FREE_FRACTION = 0.05
LOW_FREE_MIN_BYTES = GIB
LOW_FREE_CLEAR_FACTOR = 1.25
SPILL_NOISE_BYTES = 64 * MIB
LOW_GPU_MEMORY = "low_gpu_memory"
PAGED_SPILL = "paged_spill"


def low_free_threshold(total_bytes: int, fraction: float = LOW_FREE_FRACTION) -> int:
    """Free GPU memory under this is a warning: 5 % of the total or 1 GiB, whichever is larger."""
    return max(int(total_bytes * fraction), LOW_FREE_MIN_BYTES)


@dataclass(frozen=True)
class MemoryWarning:
    """One episode of a memory condition; the same `episode` number for as long as it lasts."""

    kind: str  # LOW_GPU_MEMORY or PAGED_SPILL
    episode: int  # counts up from 1 within a run
    tag: str  # a few words, for a line that holds more than one warning
    summary: str  # one short line for the panel
    message: str  # the longer notification (and the headless run's line)
    gpu_index: int | None = None  # the GPU it is about


class MemoryWarningPolicy:
    """Memory warning episodes of one run: low free GPU memory, paged state spilling to host.

    Not thread-safe on its own: the caller serialises `observe` with its readers (the run
    monitor under its lock, the console progress under its own).
    """

    def __init__(self, low_free_fraction: float = LOW_FREE_FRACTION) -> None:
        self.low_free_fraction = low_free_fraction
        self._active: dict[str, MemoryWarning] = {}
        self._episodes = 0
        self._unannounced: set[int] = set()
        self._last_spilled = 0
        self._gpu_index: int | None = None

    def observe(self, snapshot: TelemetrySnapshot) -> tuple[MemoryWarning, ...]:
        """Take one poll; return the warnings whose episode started with it."""
        index = snapshot.run_gpu_index(self._gpu_index)
        self._gpu_index = index
        gpu = None if index is None else snapshot.gpu(index)
        if gpu is None:
            return ()  # host only: no GPU memory to warn about
        before = self._episodes
        self._check_free(gpu)
        self._check_spill(gpu, snapshot.paged_for_gpu(gpu.index))
        return tuple(item for item in self._active.values() if item.episode > before)

    def active(self) -> tuple[MemoryWarning, ...]:
        """The warnings that hold now."""
        return tuple(self._active.values())

    def take_new(self) -> tuple[MemoryWarning, ...]:
        """Warnings that started since the last call and still hold: tell each once."""
        new = tuple(item for item in self._active.values() if item.episode in self._unannounced)
        self._unannounced.clear()
        return new

    def _check_free(self, gpu: GpuSnapshot) -> None:
        total, free = gpu.memory_total_bytes, gpu.free_bytes
        if not total or free is None:
            return  # not measured this time: the episode neither starts nor ends
        threshold = low_free_threshold(total, self.low_free_fraction)
        limit = threshold * LOW_FREE_CLEAR_FACTOR if LOW_GPU_MEMORY in self._active else threshold
        if free >= limit:
            self._end(LOW_GPU_MEMORY)
            return
        self._hold(
            LOW_GPU_MEMORY,
            gpu.index,
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
                gpu.index,
                f"spilling ~{gib(spilled)} GiB",
                f"paged optimizer spilling: ~{gib(spilled)} GiB on the host",
                f"GPU{gpu.index}: the paged optimizer's state is spilling to host memory "
                f"(~{gib(spilled)} of {gib(paged.paged_bytes if paged else 0)} GiB, an "
                "estimate); steps slow "
                "down while pages move over PCIe. Free GPU memory (a smaller batch or "
                "sequence length) to keep it on the GPU.",
            )

    def _hold(self, kind: str, gpu_index: int, tag: str, summary: str, message: str) -> None:
        current = self._active.get(kind)
        if current is None:
            self._episodes += 1
            self._unannounced.add(self._episodes)
            episode = self._episodes
        else:
            episode = current.episode
        self._active[kind] = MemoryWarning(kind, episode, tag, summary, message, gpu_index)

    def _end(self, kind: str) -> None:
        ended = self._active.pop(kind, None)
        if ended is not None:
            self._unannounced.discard(ended.episode)
