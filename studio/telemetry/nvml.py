"""NVML reader: one batch of queries per poll, every failure becomes None.

NVML is initialised lazily, once. If that fails (no library, no driver, no GPU) the reader
stays in a "no GPU" state with a reason and never retries, so a poll on a CPU machine costs
nothing. A query that reports NOT_SUPPORTED or NO_PERMISSION is remembered per device and
skipped afterwards (neither changes while the process runs); other errors (a busy or lost GPU)
are retried on the next poll.

MIG: a GPU in MIG mode runs CUDA work only in its slices (MIG devices), which have handles,
UUIDs and memory figures of their own. The slices are listed after the physical GPUs, numbered
on from them, so that torch's device (whose UUID is the slice's) maps to the slice it uses and
not to the whole GPU. The physical GPU stays listed for what only it reports (power,
temperature, utilisation).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

from studio.telemetry.processes import ProcessDescriber
from studio.telemetry.snapshots import GpuProcess, GpuSnapshot

_NOT_AVAILABLE_SENTINELS = {2**32 - 1, 2**64 - 1}  # NVML_VALUE_NOT_AVAILABLE variants
_KIB = 1024


@dataclass(frozen=True)
class NvmlReading:
    gpus: tuple[GpuSnapshot, ...]
    unavailable_reason: str | None


class NvmlReader:
    """Reads every GPU NVML can see. Pass `nvml_module` (a pynvml stand-in) in tests."""

    def __init__(self, nvml_module: ModuleType | Any | None = None, query_pcie: bool = True):
        self._nvml: Any = nvml_module
        # nvmlDeviceGetPcieThroughput samples over ~20 ms inside the driver: the one slow query.
        self._query_pcie = query_pcie
        self._initialised = False
        self._reason: str | None = None
        self._handles: list[Any] = []
        self._static: list[tuple[str | None, str | None]] = []  # (name, uuid) per device
        self._unsupported: set[tuple[int, str]] = set()
        self._describer = ProcessDescriber()
        self._lock = threading.Lock()

    @property
    def unavailable_reason(self) -> str | None:
        return self._reason

    def read(self) -> NvmlReading:
        with self._lock:
            if not self._initialised:
                self._initialise()
            if self._reason is not None:
                return NvmlReading((), self._reason)
            gpus = tuple(self._read_device(index) for index in range(len(self._handles)))
            return NvmlReading(self._with_process_owners(gpus), None)

    def close(self) -> None:
        with self._lock:
            if self._initialised and self._reason is None:
                # Best effort: shutting down a broken driver must not raise either.
                self._query(-1, "nvmlShutdown")
            self._initialised = False
            self._reason = None
            self._handles = []

    # -- initialisation ---------------------------------------------------------------------

    def _initialise(self) -> None:
        self._initialised = True
        if self._nvml is None:
            try:
                import pynvml  # nvidia-ml-py; imported only when telemetry first polls
            except ImportError:
                self._reason = "nvidia-ml-py (pynvml) is not installed"
                return
            self._nvml = pynvml
        try:
            self._nvml.nvmlInit()
        except Exception as error:  # NVMLError, OSError from ctypes, anything
            self._reason = f"NVML unavailable: {_describe_error(error)}"
            return
        count = self._query(-1, "nvmlDeviceGetCount")
        if not count:
            self._reason = "NVML found no GPU"
            return
        parents = [
            self._query(index, "nvmlDeviceGetHandleByIndex", index) for index in range(count)
        ]
        for handle in parents:
            self._add_device(handle)
        for index, handle in enumerate(parents):
            for slice_handle in self._mig_handles(index, handle):
                self._add_device(slice_handle)

    def _add_device(self, handle: Any) -> None:
        index = len(self._handles)
        self._handles.append(handle)
        name = uuid = None
        if handle is not None:
            name = _text(self._query(index, "nvmlDeviceGetName", handle))
            uuid = _text(self._query(index, "nvmlDeviceGetUUID", handle))
        self._static.append((name, uuid))

    def _mig_handles(self, index: int, handle: Any) -> list[Any]:
        """The handles of a GPU's MIG slices; [] when MIG is off or not supported."""
        if handle is None:
            return []
        mode = self._query(index, "nvmlDeviceGetMigMode", handle)
        current = mode[0] if isinstance(mode, (list, tuple)) and mode else None
        if current != _constant(self._nvml, "NVML_DEVICE_MIG_ENABLE", 1):
            return []
        slots = self._query(index, "nvmlDeviceGetMaxMigDeviceCount", handle) or 0
        handles = []
        for slot in range(slots if isinstance(slots, int) else 0):
            # An empty slot raises NOT_FOUND: not a reason to stop looking at later slots.
            found = self._query(index, "nvmlDeviceGetMigDeviceHandleByIndex", handle, slot)
            if found is not None:
                handles.append(found)
        return handles

    # -- one poll -------------------------------------------------------------------------

    def _read_device(self, index: int) -> GpuSnapshot:
        handle = self._handles[index]
        name, uuid = self._static[index]
        if handle is None:
            return GpuSnapshot(index=index, name=name, uuid=uuid)
        nvml = self._nvml

        def query(function: str, *arguments: Any) -> Any:
            return self._query(index, function, handle, *arguments)

        memory = query("nvmlDeviceGetMemoryInfo")
        utilisation = query("nvmlDeviceGetUtilizationRates")
        power_mw = query("nvmlDeviceGetPowerUsage")
        limit_mw = query("nvmlDeviceGetEnforcedPowerLimit")
        rx_kib = tx_kib = None
        if self._query_pcie:
            rx_kib = query(
                "nvmlDeviceGetPcieThroughput", _constant(nvml, "NVML_PCIE_UTIL_RX_BYTES", 1)
            )
            tx_kib = query(
                "nvmlDeviceGetPcieThroughput", _constant(nvml, "NVML_PCIE_UTIL_TX_BYTES", 0)
            )
        processes = self._processes(query("nvmlDeviceGetComputeRunningProcesses"))
        own_pid = os.getpid()
        own = [p.used_memory_bytes for p in processes or () if p.pid == own_pid]
        return GpuSnapshot(
            index=index,
            name=name,
            uuid=uuid,
            utilization_percent=_number(_field(utilisation, "gpu")),
            memory_used_bytes=_number(_field(memory, "used")),
            memory_total_bytes=_number(_field(memory, "total")),
            memory_free_bytes=_number(_field(memory, "free")),
            temperature_celsius=_number(
                query("nvmlDeviceGetTemperature", _constant(nvml, "NVML_TEMPERATURE_GPU", 0))
            ),
            power_draw_watts=_scaled(power_mw, 1 / 1000),
            power_limit_watts=_scaled(limit_mw, 1 / 1000),
            sm_clock_mhz=_number(
                query("nvmlDeviceGetClockInfo", _constant(nvml, "NVML_CLOCK_SM", 1))
            ),
            pcie_rx_bytes_per_second=_scaled(rx_kib, _KIB),
            pcie_tx_bytes_per_second=_scaled(tx_kib, _KIB),
            this_process_memory_bytes=own[0] if own else None,
            processes=processes,
        )

    def _processes(self, raw: Any) -> tuple[GpuProcess, ...] | None:
        if raw is None:
            return None
        processes = []
        try:
            for item in raw:
                pid = _number(_field(item, "pid"))
                if pid is not None:
                    processes.append(GpuProcess(pid, _number(_field(item, "usedGpuMemory"))))
        except TypeError:  # not iterable: treat the list as unavailable
            return None
        return tuple(processes)

    def _with_process_owners(self, gpus: tuple[GpuSnapshot, ...]) -> tuple[GpuSnapshot, ...]:
        # One psutil lookup per pid across all GPUs (a DDP job shows up on each of them).
        pids = sorted({p.pid for gpu in gpus for p in gpu.processes or ()})
        owners = self._describer.describe(pids)
        if not owners:
            return gpus
        return tuple(
            gpu
            if not gpu.processes
            else _replace_processes(
                gpu,
                tuple(
                    GpuProcess(p.pid, p.used_memory_bytes, *owners.get(p.pid, (None, None)))
                    for p in gpu.processes
                ),
            )
            for gpu in gpus
        )

    def _query(self, index: int, function: str, *arguments: Any) -> Any:
        if (index, function) in self._unsupported:
            return None
        call: Callable[..., Any] | None = getattr(self._nvml, function, None)
        if call is None:  # an older binding without this function
            self._unsupported.add((index, function))
            return None
        try:
            return call(*arguments)
        except Exception as error:  # NVMLError and its subclasses, ctypes errors
            if _is_permanent(self._nvml, error):
                self._unsupported.add((index, function))
            return None


def _replace_processes(gpu: GpuSnapshot, processes: tuple[GpuProcess, ...]) -> GpuSnapshot:
    return replace(gpu, processes=processes)


def _is_permanent(nvml: Any, error: BaseException) -> bool:
    """NOT_SUPPORTED, NO_PERMISSION or FUNCTION_NOT_FOUND: asking again gives the same answer
    (a MIG parent's process list needs root, for one)."""
    for class_name in ("NVMLError_NotSupported", "NVMLError_NoPermission"):
        error_class = getattr(nvml, class_name, None)
        if isinstance(error_class, type) and isinstance(error, error_class):
            return True
    codes = (
        _constant(nvml, "NVML_ERROR_NOT_SUPPORTED", 3),
        _constant(nvml, "NVML_ERROR_NO_PERMISSION", 4),
        _constant(nvml, "NVML_ERROR_FUNCTION_NOT_FOUND", 13),
    )
    return getattr(error, "value", None) in codes


def _describe_error(error: BaseException) -> str:
    try:
        text = str(error)
    except Exception:  # pynvml's __str__ calls into the library it failed to load
        text = ""
    return text or type(error).__name__


def _constant(nvml: Any, name: str, default: int) -> int:
    value = getattr(nvml, name, default)
    return value if isinstance(value, int) else default


def _field(value: Any, name: str) -> Any:
    return getattr(value, name, None) if value is not None else None


def _number(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value in _NOT_AVAILABLE_SENTINELS or value < 0:
        return None
    return int(value)


def _scaled(value: Any, factor: float) -> Any:
    number = _number(value)
    if number is None:
        return None
    scaled = number * factor
    return int(scaled) if isinstance(factor, int) else round(scaled, 1)


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else None
