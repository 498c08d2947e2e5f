"""Immutable telemetry snapshots and their JSON form.

Every measured value is optional: `None` means "not available" (the query failed, the GPU or
driver does not support it, or the library is missing). `to_dict()` gives plain JSON-ready
data (the engine wraps it in `TelemetryEvent`), `from_dict()` rebuilds a snapshot when
`telemetry.jsonl` is replayed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1


def _as_tuple_of(cls: Any, items: Any) -> tuple[Any, ...]:
    return tuple(cls.from_dict(item) for item in (items or ()))


@dataclass(frozen=True)
class GpuProcess:
    """A compute process holding memory on a GPU (possibly another user's job)."""

    pid: int
    used_memory_bytes: int | None = None
    user: str | None = None
    command: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GpuProcess:
        return cls(
            pid=int(data["pid"]),
            used_memory_bytes=data.get("used_memory_bytes"),
            user=data.get("user"),
            command=data.get("command"),
        )


@dataclass(frozen=True)
class GpuSnapshot:
    """One GPU as NVML sees it; `index` is NVML's index (what nvidia-smi shows)."""

    index: int
    name: str | None = None
    uuid: str | None = None
    utilization_percent: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    memory_free_bytes: int | None = None
    temperature_celsius: float | None = None
    power_draw_watts: float | None = None
    power_limit_watts: float | None = None
    sm_clock_mhz: int | None = None
    pcie_rx_bytes_per_second: int | None = None
    pcie_tx_bytes_per_second: int | None = None
    # This process's memory on the GPU per NVML (context + torch reserved, not managed memory).
    this_process_memory_bytes: int | None = None
    # None: the process list could not be read; (): it was read and is empty.
    processes: tuple[GpuProcess, ...] | None = None

    @property
    def free_bytes(self) -> int | None:
        """Free memory as NVML reported it, or total minus used when only those were read."""
        if self.memory_free_bytes is not None:
            return self.memory_free_bytes
        if self.memory_total_bytes is not None and self.memory_used_bytes is not None:
            return self.memory_total_bytes - self.memory_used_bytes
        return None

    @property
    def free_fraction(self) -> float | None:
        if self.memory_free_bytes is None or not self.memory_total_bytes:
            return None
        return self.memory_free_bytes / self.memory_total_bytes

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GpuSnapshot:
        processes = data.get("processes")
        values: dict[str, Any] = {
            key: data.get(key) for key in cls.__dataclass_fields__ if key != "processes"
        }
        values["index"] = int(data["index"])
        return cls(
            **values,
            processes=None if processes is None else _as_tuple_of(GpuProcess, processes),
        )


@dataclass(frozen=True)
class TorchMemory:
    """torch's caching-allocator view of one CUDA device of this process."""

    cuda_index: int
    gpu_index: int | None = None  # the matching GpuSnapshot.index, when it could be resolved
    allocated_bytes: int | None = None
    reserved_bytes: int | None = None
    peak_allocated_bytes: int | None = None
    num_alloc_retries: int | None = None
    num_ooms: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TorchMemory:
        values: dict[str, Any] = {key: data.get(key) for key in cls.__dataclass_fields__}
        values["cuda_index"] = int(data["cuda_index"])
        return cls(**values)


@dataclass(frozen=True)
class PagedMemory:
    """bitsandbytes paged-optimizer state (CUDA managed memory) for one CUDA device.

    `resident_bytes` / `spilled_bytes` are estimates (see docs/telemetry.md), None when the
    inputs they need are not available.
    """

    cuda_index: int
    gpu_index: int | None = None
    paged_bytes: int = 0
    tensor_count: int = 0
    resident_bytes: int | None = None
    spilled_bytes: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PagedMemory:
        values: dict[str, Any] = {key: data.get(key) for key in cls.__dataclass_fields__}
        values["cuda_index"] = int(data["cuda_index"])
        values["paged_bytes"] = int(data.get("paged_bytes") or 0)
        values["tensor_count"] = int(data.get("tensor_count") or 0)
        return cls(**values)


@dataclass(frozen=True)
class HostSnapshot:
    """Host CPU and RAM, and this process's resident memory."""

    cpu_percent: float | None = None
    ram_used_bytes: int | None = None  # total - available: memory the OS cannot hand out
    ram_total_bytes: int | None = None
    ram_available_bytes: int | None = None
    process_rss_bytes: int | None = None
    process_peak_rss_bytes: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostSnapshot:
        return cls(**{key: data.get(key) for key in cls.__dataclass_fields__})


@dataclass(frozen=True)
class TelemetrySnapshot:
    """Everything one poll saw. `gpu_unavailable_reason` is set when there is no GPU view."""

    time: float
    host: HostSnapshot = field(default_factory=HostSnapshot)
    gpus: tuple[GpuSnapshot, ...] = ()
    gpu_unavailable_reason: str | None = None
    torch_memory: tuple[TorchMemory, ...] = ()
    paged: tuple[PagedMemory, ...] = ()

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus)

    def gpu(self, index: int) -> GpuSnapshot | None:
        return next((gpu for gpu in self.gpus if gpu.index == index), None)

    def torch_for_gpu(self, gpu_index: int) -> TorchMemory | None:
        return next((item for item in self.torch_memory if item.gpu_index == gpu_index), None)

    def paged_for_gpu(self, gpu_index: int) -> PagedMemory | None:
        return next((item for item in self.paged if item.gpu_index == gpu_index), None)

    @property
    def paged_bytes(self) -> int:
        return sum(item.paged_bytes for item in self.paged)

    def to_dict(self) -> dict[str, Any]:
        data = _lists_for_tuples(asdict(self))
        data["schema"] = SCHEMA_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TelemetrySnapshot:
        return cls(
            time=float(data["time"]),
            host=HostSnapshot.from_dict(data.get("host") or {}),
            gpus=_as_tuple_of(GpuSnapshot, data.get("gpus")),
            gpu_unavailable_reason=data.get("gpu_unavailable_reason"),
            torch_memory=_as_tuple_of(TorchMemory, data.get("torch_memory")),
            paged=_as_tuple_of(PagedMemory, data.get("paged")),
        )


def _lists_for_tuples(value: Any) -> Any:
    # asdict keeps tuples; JSON has only lists, and a round-trip should compare equal as dicts.
    if isinstance(value, dict):
        return {key: _lists_for_tuples(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists_for_tuples(item) for item in value]
    return value
