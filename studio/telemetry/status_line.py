"""One compact line about memory for the headless progress bar.

`GPU0 61.2/79.6 GiB (torch 48.1 alloc / 52.0 rsv) util 97% · paged 3.1 GiB, ~0.8 spilled`
`no GPU · RAM 5.2/23.4 GiB · RSS 1.8 GiB`
A value that is not available shows as `?`.
"""

from __future__ import annotations

from studio.formatting import format_bytes, gib
from studio.telemetry.snapshots import GpuSnapshot, TelemetrySnapshot

SEPARATOR = " · "


def format_memory_status(snapshot: TelemetrySnapshot) -> str:
    if not snapshot.gpus:
        host = snapshot.host
        return SEPARATOR.join(
            (
                "no GPU",
                f"RAM {gib(host.ram_used_bytes)}/{gib(host.ram_total_bytes)} GiB",
                f"RSS {format_bytes(host.process_rss_bytes)}",
            )
        )
    return " | ".join(_gpu_part(snapshot, gpu) for gpu in snapshot.gpus)


def _gpu_part(snapshot: TelemetrySnapshot, gpu: GpuSnapshot) -> str:
    text = f"GPU{gpu.index} {gib(gpu.memory_used_bytes)}/{gib(gpu.memory_total_bytes)} GiB"
    torch_memory = snapshot.torch_for_gpu(gpu.index)
    if torch_memory is not None:
        text += (
            f" (torch {gib(torch_memory.allocated_bytes)} alloc"
            f" / {gib(torch_memory.reserved_bytes)} rsv)"
        )
    utilisation = gpu.utilization_percent
    text += f" util {'?' if utilisation is None else f'{utilisation:.0f}'}%"
    paged = snapshot.paged_for_gpu(gpu.index)
    if paged is not None and paged.paged_bytes > 0:
        spilled = "?" if paged.spilled_bytes is None else gib(paged.spilled_bytes)
        text += f"{SEPARATOR}paged {gib(paged.paged_bytes)} GiB, ~{spilled} spilled"
    return text
