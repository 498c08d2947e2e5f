"""Edge-triggered memory alerts from two consecutive snapshots.

An alert fires when a condition starts (free GPU memory drops under the threshold, paged
state starts spilling to host), not on every poll while it lasts, so a log stays readable.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.formatting import gib
from studio.telemetry.snapshots import GpuSnapshot, PagedMemory, TelemetrySnapshot

DEFAULT_LOW_FREE_FRACTION = 0.05


@dataclass(frozen=True)
class MemoryAlert:
    kind: str  # "low_gpu_memory" or "paged_spill"
    gpu_index: int
    message: str


def memory_alerts(
    previous: TelemetrySnapshot | None,
    current: TelemetrySnapshot,
    low_free_fraction: float = DEFAULT_LOW_FREE_FRACTION,
) -> tuple[MemoryAlert, ...]:
    """Alerts for conditions that hold in `current` but did not in `previous`."""
    alerts: list[MemoryAlert] = []
    for gpu in current.gpus:
        before = previous.gpu(gpu.index) if previous is not None else None
        if _is_low(gpu, low_free_fraction) and not _is_low(before, low_free_fraction):
            alerts.append(
                MemoryAlert(
                    "low_gpu_memory",
                    gpu.index,
                    f"GPU{gpu.index} free memory {gib(gpu.memory_free_bytes)} GiB of "
                    f"{gib(gpu.memory_total_bytes)} GiB is under {low_free_fraction:.0%}",
                )
            )
    for paged in current.paged:
        if paged.gpu_index is None:
            continue
        before_paged = previous.paged_for_gpu(paged.gpu_index) if previous is not None else None
        if _is_spilling(paged) and not _is_spilling(before_paged):
            alerts.append(
                MemoryAlert(
                    "paged_spill",
                    paged.gpu_index,
                    f"GPU{paged.gpu_index} paged optimizer state is spilling to host memory "
                    f"(~{gib(paged.spilled_bytes)} of {gib(paged.paged_bytes)} GiB); steps "
                    "will slow down while pages move over PCIe",
                )
            )
    return tuple(alerts)


def _is_low(gpu: GpuSnapshot | None, threshold: float) -> bool:
    fraction = gpu.free_fraction if gpu is not None else None
    return fraction is not None and fraction < threshold


def _is_spilling(paged: PagedMemory | None) -> bool:
    return paged is not None and paged.spilled_bytes is not None and paged.spilled_bytes > 0
