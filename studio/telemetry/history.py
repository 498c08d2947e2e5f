"""Ring-buffer history of the main telemetry series, for the dashboard's plots.

Each series is a `deque(maxlen=...)`, so memory stays bounded however long a run lasts.
Series names: `host.cpu_percent`, `host.ram_used_bytes`, `host.rss_bytes`, and per NVML GPU
index i: `gpu{i}.utilization_percent`, `gpu{i}.memory_used_bytes`, `gpu{i}.temperature_celsius`,
`gpu{i}.power_draw_watts`, `gpu{i}.pcie_rx_bytes_per_second`, `gpu{i}.pcie_tx_bytes_per_second`,
`gpu{i}.torch_allocated_bytes`, `gpu{i}.torch_reserved_bytes`, `gpu{i}.paged_bytes`,
`gpu{i}.paged_spilled_bytes`. A value that was not available is not recorded (a gap).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator

from studio.telemetry.snapshots import TelemetrySnapshot

DEFAULT_HISTORY_LENGTH = 600  # ten minutes at the default one-second interval

Point = tuple[float, float]


class TelemetryHistory:
    """Thread-safe: the sampler thread records while the UI thread reads."""

    def __init__(self, maxlen: int = DEFAULT_HISTORY_LENGTH) -> None:
        if maxlen < 1:
            raise ValueError("history length must be at least 1")
        self.maxlen = maxlen
        self._series: dict[str, deque[Point]] = {}
        self._lock = threading.Lock()

    def record(self, snapshot: TelemetrySnapshot) -> None:
        points = dict(_values(snapshot))
        with self._lock:
            for name, value in points.items():
                series = self._series.get(name)
                if series is None:
                    series = self._series[name] = deque(maxlen=self.maxlen)
                series.append((snapshot.time, value))

    def series(self, name: str) -> list[Point]:
        """The (time, value) points of one series, oldest first; [] for an unknown name."""
        with self._lock:
            return list(self._series.get(name, ()))

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._series)

    def clear(self) -> None:
        with self._lock:
            self._series.clear()


def _values(snapshot: TelemetrySnapshot) -> Iterator[tuple[str, float]]:
    host = snapshot.host
    for name, value in (
        ("host.cpu_percent", host.cpu_percent),
        ("host.ram_used_bytes", host.ram_used_bytes),
        ("host.rss_bytes", host.process_rss_bytes),
    ):
        if value is not None:
            yield name, float(value)
    for gpu in snapshot.gpus:
        prefix = f"gpu{gpu.index}."
        for name, value in (
            ("utilization_percent", gpu.utilization_percent),
            ("memory_used_bytes", gpu.memory_used_bytes),
            ("temperature_celsius", gpu.temperature_celsius),
            ("power_draw_watts", gpu.power_draw_watts),
            ("pcie_rx_bytes_per_second", gpu.pcie_rx_bytes_per_second),
            ("pcie_tx_bytes_per_second", gpu.pcie_tx_bytes_per_second),
        ):
            if value is not None:
                yield prefix + name, float(value)
    for torch_memory in snapshot.torch_memory:
        if torch_memory.gpu_index is None:
            continue
        prefix = f"gpu{torch_memory.gpu_index}."
        if torch_memory.allocated_bytes is not None:
            yield prefix + "torch_allocated_bytes", float(torch_memory.allocated_bytes)
        if torch_memory.reserved_bytes is not None:
            yield prefix + "torch_reserved_bytes", float(torch_memory.reserved_bytes)
    for paged in snapshot.paged:
        if paged.gpu_index is None:
            continue
        prefix = f"gpu{paged.gpu_index}."
        yield prefix + "paged_bytes", float(paged.paged_bytes)
        if paged.spilled_bytes is not None:
            yield prefix + "paged_spilled_bytes", float(paged.spilled_bytes)
