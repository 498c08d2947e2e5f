"""Host CPU, RAM and this process's memory (psutil): the whole view when there is no GPU."""

from __future__ import annotations

import contextlib
import sys

import psutil

from studio.telemetry.snapshots import HostSnapshot


class HostReader:
    """Reads host metrics; CPU % is measured between consecutive reads, so the first is None."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._cpu_primed = False

    def read(self) -> HostSnapshot:
        cpu_percent = self._cpu_percent()
        ram_used = ram_total = ram_available = None
        try:
            memory = psutil.virtual_memory()
            ram_total, ram_available = int(memory.total), int(memory.available)
            # total - available, not psutil's `used`, which leaves out buffers and reclaimable
            # slabs differently per OS; this is what matters for "will the run fit".
            ram_used = ram_total - ram_available
        except (psutil.Error, OSError):
            pass
        rss = None
        with contextlib.suppress(psutil.Error, OSError):
            rss = int(self._process.memory_info().rss)
        return HostSnapshot(
            cpu_percent=cpu_percent,
            ram_used_bytes=ram_used,
            ram_total_bytes=ram_total,
            ram_available_bytes=ram_available,
            process_rss_bytes=rss,
            process_peak_rss_bytes=_at_least(_peak_rss(self._process), rss),
        )

    def _cpu_percent(self) -> float | None:
        try:
            value = psutil.cpu_percent(interval=None)  # non-blocking: since the previous call
        except (psutil.Error, OSError):
            return None
        if not self._cpu_primed:
            self._cpu_primed = True
            return None  # the first call has no interval to measure over and always says 0.0
        return float(value)


def _peak_rss(process: psutil.Process) -> int | None:
    try:
        import resource
    except ImportError:  # Windows: psutil reports the peak working set instead
        try:
            return int(process.memory_info().peak_wset)
        except (psutil.Error, OSError, AttributeError):
            return None
    try:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (OSError, ValueError):
        return None
    # ru_maxrss is KiB on Linux and bytes on macOS.
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def _at_least(peak: int | None, current: int | None) -> int | None:
    # ru_maxrss is updated lazily by the kernel and can trail the RSS psutil just read.
    if peak is None or current is None:
        return peak if current is None else current
    return max(peak, current)
