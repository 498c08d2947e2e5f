"""Live GPU and host telemetry: NVML, torch and paged-optimizer memory, host RAM and CPU.

Importing this package imports neither torch nor pynvml nor bitsandbytes: NVML loads on the
first poll, and torch / bitsandbytes figures are read only when the process already uses them.
"""

from studio.telemetry.fit_check import FitAdvice, check_fit
from studio.telemetry.history import TelemetryHistory
from studio.telemetry.memory_warnings import MemoryWarning, MemoryWarningPolicy
from studio.telemetry.replay import read_telemetry_jsonl
from studio.telemetry.sampler import MIN_INTERVAL_SECONDS, TelemetrySampler
from studio.telemetry.snapshots import (
    GpuProcess,
    GpuSnapshot,
    HostSnapshot,
    PagedMemory,
    TelemetrySnapshot,
    TorchMemory,
)
from studio.telemetry.status_line import format_memory_status

__all__ = [
    "MIN_INTERVAL_SECONDS",
    "FitAdvice",
    "GpuProcess",
    "GpuSnapshot",
    "HostSnapshot",
    "MemoryWarning",
    "MemoryWarningPolicy",
    "PagedMemory",
    "TelemetryHistory",
    "TelemetrySampler",
    "TelemetrySnapshot",
    "TorchMemory",
    "check_fit",
    "format_memory_status",
    "read_telemetry_jsonl",
]
