"""A scripted stand-in for the `pynvml` module, for tests and GPU-less demos.

`TelemetrySampler(nvml_module=FakeNvml([...]))` shows GPUs on a machine without one, so the
dashboard and the sampler can be exercised anywhere. Each `FakeGpu` holds the values NVML
would report; `failures` makes chosen queries raise NOT_SUPPORTED or a generic NVMLError.
Values are mutable so a test can script a run over several polls.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_UNKNOWN = 999
NVML_DEVICE_MIG_ENABLE = 1
MAX_MIG_DEVICES = 7


class NVMLError(Exception):
    def __init__(self, value: int = NVML_ERROR_UNKNOWN) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {NVML_ERROR_NOT_SUPPORTED: "Not Supported"}.get(
            self.value, f"NVML error {self.value}"
        )


class NVMLError_NotSupported(NVMLError):
    def __init__(self, value: int = NVML_ERROR_NOT_SUPPORTED) -> None:
        super().__init__(value)


class NVMLError_NoPermission(NVMLError):
    def __init__(self, value: int = NVML_ERROR_NO_PERMISSION) -> None:
        super().__init__(value)


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    memory_total: int = 80 * 1024**3
    memory_used: int = 1024**3
    utilization: int = 0
    temperature: int = 35
    power_mw: int = 70_000
    power_limit_mw: int = 700_000
    sm_clock_mhz: int = 1980
    pcie_rx_kib: int = 0
    pcie_tx_kib: int = 0
    # (pid, used bytes or None) per compute process.
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    # NVML function name -> "not_supported" | "no_permission" | "error": that query raises.
    failures: dict[str, str] = field(default_factory=dict)
    # MIG slices of this GPU (MIG mode is on when there are any); handles are (parent, slot).
    mig_devices: list[FakeGpu] = field(default_factory=list)


class FakeNvml:
    """Quacks like the pynvml module for every function telemetry calls."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NoPermission = NVMLError_NoPermission
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_NO_PERMISSION = NVML_ERROR_NO_PERMISSION
    NVML_DEVICE_MIG_ENABLE = NVML_DEVICE_MIG_ENABLE
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1
    NVML_PCIE_UTIL_TX_BYTES = 0
    NVML_PCIE_UTIL_RX_BYTES = 1

    def __init__(self, gpus: list[FakeGpu], init_error: BaseException | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.initialised = False
        self.calls: Counter[str] = Counter()

    def _gpu(self, function: str, handle: Any) -> FakeGpu:
        self.calls[function] += 1
        if not self.initialised:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        if isinstance(handle, tuple):  # a MIG slice
            gpu = self.gpus[handle[0]].mig_devices[handle[1]]
        else:
            gpu = self.gpus[handle]
        failure = gpu.failures.get(function)
        if failure == "not_supported":
            raise NVMLError_NotSupported()
        if failure == "no_permission":
            raise NVMLError_NoPermission()
        if failure == "error":
            raise NVMLError(NVML_ERROR_UNKNOWN)
        return gpu

    def nvmlInit(self) -> None:
        self.calls["nvmlInit"] += 1
        if self.init_error is not None:
            raise self.init_error
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.calls["nvmlShutdown"] += 1
        self.initialised = False

    def nvmlDeviceGetCount(self) -> int:
        self.calls["nvmlDeviceGetCount"] += 1
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self.calls["nvmlDeviceGetHandleByIndex"] += 1
        return index

    def nvmlDeviceGetMigMode(self, handle: Any) -> list[int]:
        mode = (
            NVML_DEVICE_MIG_ENABLE if self._gpu("nvmlDeviceGetMigMode", handle).mig_devices else 0
        )
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int:
        gpu = self._gpu("nvmlDeviceGetMaxMigDeviceCount", handle)
        return MAX_MIG_DEVICES if gpu.mig_devices else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, slot: int) -> tuple[Any, int]:
        gpu = self._gpu("nvmlDeviceGetMigDeviceHandleByIndex", handle)
        if slot >= len(gpu.mig_devices):
            raise NVMLError(NVML_ERROR_NOT_FOUND)  # an empty slot, as NVML reports it
        return (handle, slot)

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return self._gpu("nvmlDeviceGetName", handle).name

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return self._gpu("nvmlDeviceGetUUID", handle).uuid

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
        gpu = self._gpu("nvmlDeviceGetMemoryInfo", handle)
        free = gpu.memory_total - gpu.memory_used
        return SimpleNamespace(total=gpu.memory_total, used=gpu.memory_used, free=free)

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        gpu = self._gpu("nvmlDeviceGetUtilizationRates", handle)
        return SimpleNamespace(gpu=gpu.utilization, memory=0)

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        return self._gpu("nvmlDeviceGetTemperature", handle).temperature

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return self._gpu("nvmlDeviceGetPowerUsage", handle).power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return self._gpu("nvmlDeviceGetEnforcedPowerLimit", handle).power_limit_mw

    def nvmlDeviceGetClockInfo(self, handle: Any, clock: int) -> int:
        return self._gpu("nvmlDeviceGetClockInfo", handle).sm_clock_mhz

    def nvmlDeviceGetPcieThroughput(self, handle: Any, counter: int) -> int:
        gpu = self._gpu("nvmlDeviceGetPcieThroughput", handle)
        return gpu.pcie_rx_kib if counter == self.NVML_PCIE_UTIL_RX_BYTES else gpu.pcie_tx_kib

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]:
        gpu = self._gpu("nvmlDeviceGetComputeRunningProcesses", handle)
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in gpu.processes]
