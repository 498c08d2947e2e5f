"""Status line, fit check, device mapping and the snapshot dict round trip (the memory warnings:
test_telemetry_memory_warnings.py)."""

from __future__ import annotations

import json

import pytest

from studio.telemetry import (
    GpuProcess,
    GpuSnapshot,
    HostSnapshot,
    PagedMemory,
    TelemetrySnapshot,
    TorchMemory,
    check_fit,
    format_memory_status,
)
from studio.telemetry.device_map import map_cuda_to_gpu

GIB = 1024**3


def gpu(index: int = 0, used: float = 61.2, total: float = 79.6, **values: object) -> GpuSnapshot:
    used_bytes, total_bytes = int(used * GIB), int(total * GIB)
    return GpuSnapshot(
        index=index,
        name="H100",
        memory_used_bytes=used_bytes,
        memory_total_bytes=total_bytes,
        memory_free_bytes=total_bytes - used_bytes,
        **values,  # type: ignore[arg-type]
    )


def snapshot(
    *gpus: GpuSnapshot, paged: tuple[PagedMemory, ...] = (), **values: object
) -> TelemetrySnapshot:
    return TelemetrySnapshot(
        time=1.0,
        host=HostSnapshot(
            ram_used_bytes=int(5.2 * GIB),
            ram_total_bytes=int(23.4 * GIB),
            ram_available_bytes=int(18.2 * GIB),
            process_rss_bytes=int(1.8 * GIB),
        ),
        gpus=gpus,
        gpu_unavailable_reason=None if gpus else "NVML unavailable: NVML Shared Library Not Found",
        paged=paged,
        **values,  # type: ignore[arg-type]
    )


def spilled(spill_gib: float | None, gpu_index: int = 0) -> PagedMemory:
    spill = None if spill_gib is None else int(spill_gib * GIB)
    return PagedMemory(
        cuda_index=gpu_index, gpu_index=gpu_index, paged_bytes=int(3.1 * GIB), spilled_bytes=spill
    )


# -- status line ------------------------------------------------------------------------


def test_status_line_on_gpu() -> None:
    torch_memory = TorchMemory(
        cuda_index=0, gpu_index=0, allocated_bytes=int(48.1 * GIB), reserved_bytes=52 * GIB
    )
    line = format_memory_status(
        snapshot(
            gpu(utilization_percent=97),
            paged=(spilled(0.8),),
            torch_memory=(torch_memory,),
        )
    )
    assert line == (
        "GPU0 61.2/79.6 GiB (torch 48.1 alloc / 52.0 rsv) util 97% · paged 3.1 GiB, ~0.8 spilled"
    )


def test_status_line_without_torch_paged_or_utilisation() -> None:
    line = format_memory_status(snapshot(gpu(), paged=(spilled(None),)))
    assert line == "GPU0 61.2/79.6 GiB util ?% · paged 3.1 GiB, ~? spilled"
    empty = GpuSnapshot(index=1)
    assert format_memory_status(snapshot(empty)) == "GPU1 ?/? GiB util ?%"


def test_status_line_on_cpu() -> None:
    assert format_memory_status(snapshot()) == "no GPU · RAM 5.2/23.4 GiB · RSS 1.8 GiB"
    small = TelemetrySnapshot(time=0.0, host=HostSnapshot(process_rss_bytes=300 * 1024**2))
    assert format_memory_status(small) == "no GPU · RAM ?/? GiB · RSS 300 MiB"


def test_status_line_two_gpus() -> None:
    line = format_memory_status(snapshot(gpu(0, utilization_percent=50), gpu(1, used=2.0)))
    assert line == "GPU0 61.2/79.6 GiB util 50% | GPU1 2.0/79.6 GiB util ?%"


# -- fit check --------------------------------------------------------------------------


def test_fits_with_headroom_gives_no_advice() -> None:
    assert check_fit(10 * GIB, snapshot(gpu())) is None  # 18.4 GiB free


def test_does_not_fit_names_concrete_changes() -> None:
    advice = check_fit(
        30 * GIB,
        snapshot(gpu()),
        method="lora",
        batch_size=8,
        gradient_accumulation=2,
        max_length=2048,
        gradient_checkpointing=False,
        optimizer="adamw_torch",
    )
    assert advice is not None and not advice.fits
    assert advice.device == "GPU0"
    assert advice.shortfall_bytes == 30 * GIB - advice.available_bytes
    assert "30.0 GiB" in advice.message and "18.4 GiB free on GPU0" in advice.message
    text = "\n".join(advice.suggestions)
    assert "QLoRA" in text
    assert "batch_size 8 -> 4 and gradient_accumulation 2 -> 4" in text
    assert "gradient_checkpointing" in text
    assert "max_length 2048 -> 1024" in text
    assert "paged_adamw_8bit" in text


def test_advice_leaves_out_what_is_already_done() -> None:
    advice = check_fit(
        30 * GIB,
        snapshot(gpu()),
        method="qlora",
        batch_size=1,
        max_length=128,
        gradient_checkpointing=True,
        optimizer="paged_adamw_8bit",
    )
    assert advice is not None and advice.suggestions == ()


def test_tight_fit_is_a_warning_that_still_fits() -> None:
    advice = check_fit(18 * GIB, snapshot(gpu()))  # 18.0 of 18.4 GiB free
    assert advice is not None and advice.fits and "only barely" in advice.message


def test_no_gpu_compares_with_host_ram() -> None:
    advice = check_fit(20 * GIB, snapshot())
    assert advice is not None and advice.device == "host RAM" and not advice.fits
    assert "available in host RAM" in advice.message
    assert not any("QLoRA" in line or "paged" in line for line in advice.suggestions)
    assert check_fit(GIB, snapshot()) is None


def test_unknown_free_memory_gives_no_advice() -> None:
    assert check_fit(10 * GIB, snapshot(GpuSnapshot(index=0))) is None
    assert check_fit(10 * GIB, snapshot(gpu()), device_index=3) is None


# -- device mapping ---------------------------------------------------------------------


def test_cuda_indices_map_by_uuid_then_visible_devices() -> None:
    gpus = [GpuSnapshot(index=i, uuid=f"GPU-{name}") for i, name in enumerate("abcd")]
    assert map_cuda_to_gpu(2, gpus, ["c", "A"], visible_devices="") == {0: 2, 1: 0}
    assert map_cuda_to_gpu(2, gpus, [], visible_devices="3,1") == {0: 3, 1: 1}
    assert map_cuda_to_gpu(2, gpus, [], visible_devices="") == {0: 0, 1: 1}
    assert map_cuda_to_gpu(1, gpus, [], visible_devices="7") == {0: None}
    assert map_cuda_to_gpu(1, [], ["a"], visible_devices="") == {0: None}


@pytest.mark.parametrize("visible", ["GPU-b", "MIG-x/1/2"])
def test_non_integer_visible_devices_fall_back_to_identity(visible: str) -> None:
    gpus = [GpuSnapshot(index=0, uuid="GPU-a"), GpuSnapshot(index=1, uuid="GPU-b")]
    assert map_cuda_to_gpu(1, gpus, [], visible_devices=visible) == {0: 0}


# -- dict round trip --------------------------------------------------------------------


def test_snapshot_dict_round_trip_is_json_ready() -> None:
    full = snapshot(
        gpu(
            0,
            utilization_percent=97,
            temperature_celsius=None,
            processes=(GpuProcess(1, GIB, "ana", "python train.py"), GpuProcess(2)),
        ),
        GpuSnapshot(index=1, processes=None),
        GpuSnapshot(index=2, processes=()),
        paged=(spilled(0.8),),
        torch_memory=(TorchMemory(cuda_index=0, gpu_index=0, allocated_bytes=GIB),),
    )
    data = json.loads(json.dumps(full.to_dict()))
    assert data["schema"] == 1
    assert data["gpus"][0]["temperature_celsius"] is None
    assert data["gpus"][0]["processes"][0] == {
        "pid": 1,
        "used_memory_bytes": GIB,
        "user": "ana",
        "command": "python train.py",
    }
    restored = TelemetrySnapshot.from_dict(data)
    assert restored == full
    assert restored.gpus[1].processes is None and restored.gpus[2].processes == ()


def test_from_dict_tolerates_missing_keys() -> None:
    restored = TelemetrySnapshot.from_dict({"time": 2.5})
    assert restored == TelemetrySnapshot(time=2.5)
    assert restored.host.ram_total_bytes is None
