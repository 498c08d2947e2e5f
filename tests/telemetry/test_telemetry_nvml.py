"""NVML reading against a scripted pynvml stand-in: failures become None, nothing raises."""

from __future__ import annotations

import os

import psutil
import pytest

from studio.telemetry.fake_nvml import FakeGpu, FakeNvml, NVMLError
from studio.telemetry.nvml import NvmlReader

GIB = 1024**3
MISSING_PID = 2**22 + 12345  # above Linux's pid_max default: no such process


def two_gpus() -> FakeNvml:
    return FakeNvml(
        [
            FakeGpu(
                name="GPU A",
                uuid="GPU-aaaa",
                memory_used=60 * GIB,
                utilization=97,
                pcie_rx_kib=2048,
                pcie_tx_kib=1024,
                processes=[(os.getpid(), 50 * GIB), (MISSING_PID, 8 * GIB)],
            ),
            FakeGpu(
                name="GPU B",
                uuid="GPU-bbbb",
                failures={
                    "nvmlDeviceGetPowerUsage": "not_supported",
                    "nvmlDeviceGetTemperature": "error",
                    "nvmlDeviceGetPcieThroughput": "not_supported",
                    "nvmlDeviceGetComputeRunningProcesses": "error",
                },
            ),
        ]
    )


def test_two_gpus_are_read_with_units_converted() -> None:
    reading = NvmlReader(two_gpus()).read()
    assert reading.unavailable_reason is None
    first, second = reading.gpus
    assert (first.index, first.name, first.uuid) == (0, "GPU A", "GPU-aaaa")
    assert first.memory_used_bytes == 60 * GIB
    assert first.memory_free_bytes == 20 * GIB
    assert first.memory_total_bytes == 80 * GIB
    assert first.utilization_percent == 97
    assert first.power_draw_watts == 70.0 and first.power_limit_watts == 700.0
    assert first.sm_clock_mhz == 1980 and first.temperature_celsius == 35
    assert first.pcie_rx_bytes_per_second == 2048 * 1024
    assert first.pcie_tx_bytes_per_second == 1024 * 1024
    assert first.this_process_memory_bytes == 50 * GIB
    assert second.name == "GPU B"


def test_failing_and_unsupported_queries_become_none() -> None:
    _, second = NvmlReader(two_gpus()).read().gpus
    assert second.power_draw_watts is None  # not supported
    assert second.temperature_celsius is None  # generic NVMLError
    assert second.pcie_rx_bytes_per_second is None
    assert second.processes is None  # list unavailable, not "empty"
    assert second.this_process_memory_bytes is None
    assert second.power_limit_watts == 700.0  # the rest of the device still reads


def test_not_supported_is_skipped_afterwards_but_errors_are_retried() -> None:
    fake = two_gpus()
    reader = NvmlReader(fake)
    reader.read()
    power_calls, temperature_calls = (
        fake.calls["nvmlDeviceGetPowerUsage"],
        fake.calls["nvmlDeviceGetTemperature"],
    )
    reader.read()
    # GPU0 supports power (1 more call); GPU1's NOT_SUPPORTED is not asked again.
    assert fake.calls["nvmlDeviceGetPowerUsage"] == power_calls + 1
    # The generic error on GPU1 may be transient: both GPUs are asked again.
    assert fake.calls["nvmlDeviceGetTemperature"] == temperature_calls + 2
    fake.gpus[1].failures.pop("nvmlDeviceGetTemperature")
    assert reader.read().gpus[1].temperature_celsius == 35


def test_processes_carry_owner_from_psutil() -> None:
    first, _ = NvmlReader(two_gpus()).read().gpus
    assert first.processes is not None
    mine, missing = first.processes
    assert mine.pid == os.getpid() and mine.used_memory_bytes == 50 * GIB
    assert mine.user == psutil.Process().username()
    assert mine.command  # this test process's command line
    assert (missing.user, missing.command) == (None, None)  # gone or in another pid namespace
    assert missing.used_memory_bytes == 8 * GIB


def test_process_memory_not_available_is_none() -> None:
    fake = FakeNvml([FakeGpu(processes=[(os.getpid(), None), (MISSING_PID, 2**64 - 1)])])
    (gpu,) = NvmlReader(fake).read().gpus
    assert gpu.processes is not None
    assert [p.used_memory_bytes for p in gpu.processes] == [None, None]
    assert gpu.this_process_memory_bytes is None


def test_init_failure_is_a_reason_and_not_retried() -> None:
    fake = FakeNvml([FakeGpu()], init_error=NVMLError(9))
    reader = NvmlReader(fake)
    for _ in range(3):
        reading = reader.read()
        assert reading.gpus == ()
        assert reading.unavailable_reason == "NVML unavailable: NVML error 9"
    assert fake.calls["nvmlInit"] == 1


@pytest.mark.parametrize("error", [OSError("libnvidia-ml.so.1: cannot open"), RuntimeError("x")])
def test_any_init_exception_is_caught(error: BaseException) -> None:
    reading = NvmlReader(FakeNvml([], init_error=error)).read()
    assert reading.gpus == () and reading.unavailable_reason


def test_no_devices_is_no_gpu() -> None:
    assert NvmlReader(FakeNvml([])).read().unavailable_reason == "NVML found no GPU"


def test_every_query_failing_still_gives_a_gpu_of_nones() -> None:
    functions = [name for name in dir(FakeNvml) if name.startswith("nvmlDeviceGet")]
    failures = {name: "error" for name in functions}
    (gpu,) = NvmlReader(FakeNvml([FakeGpu(failures=failures)])).read().gpus
    assert gpu.index == 0
    assert gpu.name is None and gpu.memory_used_bytes is None and gpu.processes is None
    assert gpu.free_fraction is None


def test_module_missing_functions_is_tolerated() -> None:
    fake = FakeNvml([FakeGpu()])
    fake.nvmlDeviceGetPcieThroughput = None  # type: ignore[assignment, method-assign]
    reader = NvmlReader(fake)
    (gpu,) = reader.read().gpus
    assert gpu.pcie_rx_bytes_per_second is None and gpu.memory_used_bytes == GIB


def test_pcie_can_be_skipped() -> None:
    fake = FakeNvml([FakeGpu(pcie_rx_kib=5)])
    (gpu,) = NvmlReader(fake, query_pcie=False).read().gpus
    assert gpu.pcie_rx_bytes_per_second is None
    assert fake.calls["nvmlDeviceGetPcieThroughput"] == 0


def test_close_shuts_down_once_initialised() -> None:
    fake = FakeNvml([FakeGpu()])
    reader = NvmlReader(fake)
    reader.read()
    reader.close()
    assert fake.calls["nvmlShutdown"] == 1 and not fake.initialised


def test_real_pynvml_on_this_machine_never_raises() -> None:
    reading = NvmlReader().read()
    if reading.gpus:  # pragma: no cover - only on a GPU machine
        assert reading.unavailable_reason is None
    else:
        assert reading.unavailable_reason


# ---------------------------------------------------------------- MIG (issue 20)


def mig_gpu() -> FakeNvml:
    slices = [
        FakeGpu(
            name="NVIDIA H100 80GB HBM3 MIG 3g.40gb",
            uuid=f"MIG-{index}aaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            memory_total=40 * GIB,
            memory_used=(index + 1) * GIB,
            # A slice has no power, temperature or utilisation of its own.
            failures={
                "nvmlDeviceGetPowerUsage": "not_supported",
                "nvmlDeviceGetUtilizationRates": "not_supported",
            },
        )
        for index in range(2)
    ]
    parent = FakeGpu(
        uuid="GPU-ffffffff-0000-0000-0000-000000000000",
        mig_devices=slices,
        # Under MIG, the parent's process list needs root: the same answer every time.
        failures={"nvmlDeviceGetComputeRunningProcesses": "no_permission"},
    )
    return FakeNvml([parent])


def test_mig_slices_are_read_and_torch_s_device_maps_to_its_slice() -> None:
    from studio.telemetry.device_map import map_cuda_to_gpu

    reading = NvmlReader(mig_gpu()).read()
    assert [gpu.index for gpu in reading.gpus] == [0, 1, 2]
    whole, _first, second = reading.gpus
    assert whole.memory_total_bytes == 80 * GIB
    assert "MIG 3g.40gb" in (second.name or "") and second.memory_total_bytes == 40 * GIB
    assert second.memory_used_bytes == 2 * GIB and second.power_draw_watts is None
    # torch reports the slice's UUID without NVML's "MIG-" prefix.
    torch_uuid = "1aaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    assert map_cuda_to_gpu(1, reading.gpus, [torch_uuid], visible_devices=None) == {0: 2}


def test_a_permission_error_is_not_asked_again_every_poll() -> None:
    fake = mig_gpu()
    reader = NvmlReader(fake)
    for _ in range(3):
        (whole, *_slices) = reader.read().gpus
        assert whole.processes is None and whole.memory_used_bytes == GIB
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses"] == 1 + 2 * 3  # parent once
