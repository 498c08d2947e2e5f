"""Loading a chat model on a GPU next to a training run: refused when it would not fit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from studio.chat import loading
from studio.chat.memory import (
    DTYPE_BYTES,
    GpuRoom,
    check_gpu_room,
    estimate_chat_bytes,
    gpu_room,
)
from studio.chat.targets import ChatTarget, run_target
from studio.config import ModelSettings, RunConfig, dump_config
from studio.errors import ModelError
from studio.models.loading import DevicePlan
from studio.telemetry import GpuSnapshot, TelemetrySnapshot, TorchMemory

GIB = 1024**3


def snapshot(free_gib: float, *, reserved_gib: float = 0, allocated_gib: float = 0):
    gpu = GpuSnapshot(index=0, memory_total_bytes=80 * GIB, memory_free_bytes=int(free_gib * GIB))
    torch_memory = (
        TorchMemory(
            cuda_index=0,
            gpu_index=0,
            reserved_bytes=int(reserved_gib * GIB),
            allocated_bytes=int(allocated_gib * GIB),
        ),
    )
    return TelemetrySnapshot(time=0.0, gpus=(gpu,), torch_memory=torch_memory)


def test_room_counts_free_memory_and_this_process_s_unused_cache() -> None:
    assert gpu_room(10 * GIB, snapshot(12), 0).fits
    assert not gpu_room(10 * GIB, snapshot(8), 0).fits
    # A training run in this process holds 6 GiB reserved of which 3 are in use: 3 are reusable.
    room = gpu_room(10 * GIB, snapshot(8, reserved_gib=6, allocated_gib=3), 0)
    assert room.free_bytes == 11 * GIB and room.fits
    # No NVML view of that GPU: free memory unknown, loading is not refused on a guess.
    assert gpu_room(10 * GIB, TelemetrySnapshot(time=0.0), 0).fits


def test_refusal_says_what_to_do() -> None:
    room = GpuRoom(needed_bytes=20 * GIB, free_bytes=4 * GIB, gpu_label="GPU0")
    with pytest.raises(ModelError) as caught:
        check_gpu_room(room, what="run-x (checkpoint-50)", run_training=True)
    text = str(caught.value)
    assert "beside the training run" in text and "20.0 GiB" in text and "4.0 GiB" in text
    assert "--device cpu" in text and "wait until the run has finished" in text
    check_gpu_room(GpuRoom(1, 2, "GPU0"), what="x", run_training=False)  # fits: no error


def test_estimate_covers_the_weights(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    weights = sum(p.numel() for p in model.parameters()) * DTYPE_BYTES["bfloat16"]
    estimate = estimate_chat_bytes(ModelSettings(), str(tiny_model_dir), "bfloat16")
    assert estimate is not None and weights < estimate < weights + 2 * GIB
    four_bit = estimate_chat_bytes(ModelSettings(), str(tiny_model_dir), "bfloat16", quantized=True)
    assert four_bit is not None and four_bit < estimate


def test_loading_beside_a_training_run_is_refused_before_any_weights_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(dump_config(RunConfig()))
    (run / "status.json").write_text(json.dumps({"state": "running", "pid": os.getpid()}))
    checkpoint = run / "checkpoints" / "checkpoint-10"
    checkpoint.mkdir(parents=True)
    (checkpoint / "adapter_config.json").write_text('{"base_model_name_or_path": "tiny-demo"}')
    (checkpoint / "ftstudio_complete.json").write_text("{}")
    target: ChatTarget = run_target(run, checkpoint=10)
    assert target.run_is_training

    cuda = DevicePlan(device="cuda", dtype_name="bfloat16", bf16=True, fp16=False)
    monkeypatch.setattr(loading, "chat_device_plan", lambda target, device: cuda)
    measured = []

    def tiny_gpu(needed: int) -> GpuRoom:
        measured.append(needed)
        return GpuRoom(needed, 1024**2, "GPU0")

    def must_not_load(*args, **kwargs):
        raise AssertionError("weights loaded although the GPU has no room")

    monkeypatch.setattr(loading, "measure_gpu_room", tiny_gpu)
    monkeypatch.setattr(loading, "load_base_model", must_not_load)
    monkeypatch.setattr(loading, "load_tokenizer", must_not_load)
    with pytest.raises(ModelError, match=r"not enough GPU memory .* beside the training run"):
        loading.load_chat_parts(target)
    assert measured and measured[0] > 0

    # The same target on the CPU is not checked at all.
    cpu = DevicePlan(device="cpu", dtype_name="float32", bf16=False, fp16=False)
    monkeypatch.setattr(loading, "chat_device_plan", lambda target, device: cpu)
    measured.clear()
    with pytest.raises(AssertionError, match="weights loaded"):
        loading.load_chat_parts(target)
    assert not measured


def test_a_4bit_estimate_keeps_embeddings_and_the_output_layer_in_bf16(tmp_path: Path) -> None:
    """bitsandbytes quantizes the linear layers only; an 8B model's 128k x 4096 embedding and
    output layer stay in bf16 (2 x 1.05 GB), not 0.55 bytes per parameter."""
    from transformers import LlamaConfig

    folder = tmp_path / "llama-like"
    vocab, hidden = 128_256, 2048
    LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2048,
        num_hidden_layers=1,
        num_attention_heads=16,
        num_key_value_heads=4,
        tie_word_embeddings=False,
    ).save_pretrained(folder)
    estimate = estimate_chat_bytes(ModelSettings(), str(folder), "bfloat16", quantized=True)
    kept_in_bf16 = 2 * vocab * hidden * DTYPE_BYTES["bfloat16"]  # embedding + output layer
    assert estimate is not None and estimate > kept_in_bf16  # 1.05 GB before the rest
    full = estimate_chat_bytes(ModelSettings(), str(folder), "bfloat16")
    assert full is not None and estimate < full
