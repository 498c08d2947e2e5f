"""Device choice: a pure function of the devices config, a telemetry snapshot and the estimate."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from studio.config import config_from_dict
from studio.engine.devices import (
    choose_devices,
    decide_devices,
    keep_to_one_device,
    pin_visible_devices,
)
from studio.errors import ConfigError
from studio.telemetry.fake_nvml import FakeGpu, FakeNvml
from studio.telemetry.sampler import TelemetrySampler
from studio.telemetry.snapshots import GpuProcess, GpuSnapshot, HostSnapshot, TelemetrySnapshot

GIB = 1024**3


def gpu(index: int, free_gib: float, busy: float = 0.0, processes=()) -> GpuSnapshot:
    total = 80 * GIB
    free = int(free_gib * GIB)
    return GpuSnapshot(
        index=index,
        name="H100",
        memory_total_bytes=total,
        memory_used_bytes=total - free,
        memory_free_bytes=free,
        utilization_percent=busy,
        processes=tuple(processes),
    )


def machine(*gpus: GpuSnapshot) -> TelemetrySnapshot:
    return TelemetrySnapshot(time=0.0, host=HostSnapshot(ram_available_bytes=64 * GIB), gpus=gpus)


def devices(**fields):
    return config_from_dict({"devices": fields}).devices


SHARED = machine(
    gpu(0, 2, busy=99, processes=[GpuProcess(101, 78 * GIB, "alice", "python train.py")]),
    gpu(1, 70, busy=10, processes=[GpuProcess(102, 10 * GIB, "bob", "jupyter")]),
    gpu(2, 79, busy=0, processes=[]),
    gpu(3, 40, busy=50, processes=[GpuProcess(103, 40 * GIB, "carol", "vllm serve")]),
)


def test_auto_picks_the_freest_gpu_that_fits_and_says_why() -> None:
    choice = choose_devices(devices(), SHARED, method="lora", estimate_bytes=20 * GIB)
    assert choice.gpus == (2,) and choice.processes == 1 and choice.strategy == "single"
    assert "GPU2" in choice.reason and "most free memory" in choice.reason
    assert "fits" in choice.reason and choice.warnings == ()


def test_auto_with_two_gpus_is_a_ddp_group_for_an_adapter_and_fsdp_for_a_full_finetune() -> None:
    lora = choose_devices(devices(gpu_count=2), SHARED, method="lora", estimate_bytes=30 * GIB)
    assert lora.gpus == (2, 1) and lora.strategy == "ddp" and lora.distributed
    assert lora.visible_devices == "2,1"
    full = choose_devices(devices(gpu_count=2), SHARED, method="full", estimate_bytes=100 * GIB)
    # FSDP shards the 100 GiB: 50 GiB a GPU fits on GPU2 and GPU1, not on the others.
    assert full.strategy == "fsdp" and full.gpus == (2, 1)


def test_auto_skips_a_freer_gpu_the_run_does_not_fit_and_warns_when_none_fits() -> None:
    snapshot = machine(gpu(0, 10), gpu(1, 9))
    choice = choose_devices(devices(), snapshot, method="lora", estimate_bytes=200 * GIB)
    assert choice.gpus == (0,)
    assert any("does not fit" in warning for warning in choice.warnings)


def test_listed_gpus_are_used_as_given_with_warnings_for_shared_or_too_small_ones() -> None:
    choice = choose_devices(devices(gpus="0"), SHARED, method="lora", estimate_bytes=20 * GIB)
    assert choice.gpus == (0,) and choice.reason.startswith("as configured")
    text = " ".join(choice.warnings)
    assert "does not fit" in text and "alice: python train.py" in text


def test_own_processes_are_not_counted_as_other_users() -> None:
    snapshot = machine(gpu(0, 50, processes=[GpuProcess(os.getpid(), GIB, "me", "ftstudio")]))
    choice = choose_devices(
        devices(gpus="0"), snapshot, method="lora", own_pids=frozenset({os.getpid()})
    )
    assert choice.warnings == () and "no other processes" in choice.reason


def test_a_gpu_the_machine_does_not_have_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="GPU 7") as error:
        choose_devices(devices(gpus="0,7"), SHARED, method="lora")
    assert "nvidia-smi" in (error.value.advice or "")
    with pytest.raises(ConfigError, match="no GPU is visible"):
        choose_devices(devices(gpus="1"), machine(), method="lora")


def test_cpu_runs_in_process_or_as_a_gloo_group_and_fsdp_falls_back_to_ddp_on_cpu() -> None:
    one = choose_devices(devices(), machine(), method="lora")
    assert (one.processes, one.strategy, one.gpus) == (1, "single", ())
    two = choose_devices(devices(cpu_processes=2), machine(), method="full")
    assert (two.processes, two.strategy) == (2, "ddp")
    assert any("FSDP needs GPUs" in warning for warning in two.warnings)


def test_gpu_field_accepts_lists_and_numbers_and_rejects_garbage() -> None:
    assert devices(gpus=[0, 3]).indices == (0, 3)
    assert devices(gpus=2).indices == (2,)
    assert devices().indices is None
    for bad in ("a", "0,0", "1,,2", "-1"):
        with pytest.raises(ConfigError, match=r"devices\.gpus"):
            devices(gpus=bad)


def test_decide_devices_reads_the_scripted_machine_through_the_sampler() -> None:
    fake = FakeNvml(
        [
            FakeGpu(memory_used=70 * GIB, utilization=90),
            FakeGpu(memory_used=5 * GIB, utilization=3),
        ]
    )
    sampler = TelemetrySampler(nvml_module=fake)
    snapshot = sampler.sample_once()
    sampler.close()
    config = config_from_dict({"model": {"source": "tiny-demo"}})
    choice = decide_devices(config, snapshot=snapshot)
    assert choice.gpus == (1,)


def test_pinning_sets_cuda_visible_devices_only_before_cuda_starts() -> None:
    choice = choose_devices(
        devices(gpus="3"), SHARED.__class__(time=0, gpus=(gpu(3, 40),)), method="lora"
    )
    environ: dict[str, str] = {}
    assert pin_visible_devices(choice, environ, cuda_started=False) == "CUDA_VISIBLE_DEVICES=3"
    assert environ == {"CUDA_VISIBLE_DEVICES": "3", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert pin_visible_devices(choice, environ, cuda_started=False) is None  # already so
    late: dict[str, str] = {}
    note = pin_visible_devices(choice, late, cuda_started=True)
    assert late == {} and note is not None and "already started" in note
    cpu = choose_devices(devices(), machine(), method="lora")
    assert pin_visible_devices(cpu, {}, cuda_started=False) is None


def test_a_one_device_run_is_kept_off_data_parallel() -> None:
    """The Trainer saw 4 GPUs: n_gpu 4 would wrap DataParallel and multiply the batch by 4."""
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir="unused", per_device_train_batch_size=2, use_cpu=True)
    _ = args.device
    args._n_gpu = 4
    trainer = SimpleNamespace(args=args, _train_batch_size=args.train_batch_size)
    assert trainer._train_batch_size == 8
    lines: list[str] = []
    assert keep_to_one_device(trainer, lambda text, level: lines.append(text)) is True
    assert args.n_gpu == 1 and trainer._train_batch_size == 2
    assert lines == ["4 GPUs visible: training on one (no DataParallel)"]
    assert keep_to_one_device(trainer) is False


def test_the_session_is_in_process_for_one_device_and_a_group_for_several(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from studio.engine import devices as device_module
    from studio.engine.launcher import GroupSession, session_for_config
    from studio.engine.session import TrainingSession

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    config = config_from_dict({"model": {"source": "tiny-demo"}})
    cpu = session_for_config(config, snapshot=machine())
    assert isinstance(cpu, TrainingSession)
    assert cpu.device_notes == [("info", "devices: CPU: no GPU is visible")]
    group = session_for_config(
        config_from_dict({"devices": {"cpu_processes": 2}}), snapshot=machine()
    )
    assert isinstance(group, GroupSession) and group.spec.processes == 2
    assert group.visible_devices is None

    # One GPU before CUDA started: this process is narrowed to it and trains in-process.
    monkeypatch.setattr(device_module, "cuda_started", lambda: False)
    one = session_for_config(config, snapshot=SHARED)
    assert isinstance(one, TrainingSession)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2"
    assert ("info", "devices: CUDA_VISIBLE_DEVICES=2") in one.device_notes
    # CUDA already running here (on GPU 2): GPU 1 gets a process of its own that sees only it.
    monkeypatch.setattr(device_module, "cuda_started", lambda: True)
    other = session_for_config(config_from_dict({"devices": {"gpus": "1"}}), snapshot=SHARED)
    assert isinstance(other, GroupSession) and other.spec.processes == 1
    assert other.visible_devices == "1"
    assert any("process of its own" in line for _, line in other.device_notes)
    # Two GPUs: a DDP group shown exactly those two.
    pair = session_for_config(config_from_dict({"devices": {"gpus": "3,1"}}), snapshot=SHARED)
    assert isinstance(pair, GroupSession) and pair.spec.processes == 2
    assert pair.environment()["CUDA_VISIBLE_DEVICES"] == "3,1"
    assert pair.environment()["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


def test_the_fit_check_looks_at_the_gpu_this_process_was_given() -> None:
    from studio.engine.devices import nvml_index_for

    assert nvml_index_for(0, {"CUDA_VISIBLE_DEVICES": "3"}) == 3
    assert nvml_index_for(1, {"CUDA_VISIBLE_DEVICES": "3,1"}) == 1
    assert nvml_index_for(0, {}) == 0 and nvml_index_for(1, {}) == 1
    assert nvml_index_for(0, {"CUDA_VISIBLE_DEVICES": "GPU-1234"}) == 0  # UUIDs: unknown
