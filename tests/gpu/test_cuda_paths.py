"""Every CUDA path once: bf16 LoRA, QLoRA NF4 with a paged 8-bit optimizer, Liger on and off in
one process, FlashAttention with padding-free batches, activation offloading, torch.compile,
full fine-tunes in bf16 and fp16, chat with compare, NVML with real numbers, the fit check.

Skipped without CUDA (tests/gpu/conftest.py); `python -m bench.gpu_check OUT` runs them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from tests.gpu.conftest import needs_module
from tests.support.training_runs import log_text, read_metrics, train_tiny

pytestmark = pytest.mark.gpu

ALPACA = "sample_data/alpaca_en.jsonl"
QUESTION = "What is the capital of France?"


def trained(tmp_path: Path, settings: dict) -> tuple[Path, str]:
    """Run to the end; (run folder, log). A failed run fails the test with its log."""
    training = {"logging_steps": 1, **settings.get("training", {})}
    settings = {"data": {"path": ALPACA, "max_length": 128}, **settings, "training": training}
    result, run_dir, _ = train_tiny(tmp_path, settings)
    log = log_text(run_dir)
    assert result.state.value == "finished", log
    return run_dir, log


def finite_losses(run_dir: Path) -> list[float]:
    losses = [row["loss"] for row in read_metrics(run_dir) if row.get("type") == "train"]
    assert losses and all(math.isfinite(loss) for loss in losses), losses
    return losses


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> Path:
    run_dir, log = trained(
        tmp_path_factory.mktemp("lora"),
        {"training": {"max_steps": 40, "batch_size": 8, "learning_rate": 3e-3}},
    )
    assert "on cuda as bfloat16" in log and "fast path: bf16 on" in log, log
    return run_dir


def test_bf16_lora_trains_on_cuda(lora_run: Path) -> None:
    losses = finite_losses(lora_run)
    assert losses[-1] < losses[0]


def _released(log: str) -> tuple[float, float]:
    found = re.search(r"paged optimizer state released: ([\d.]+) MiB registered, ([\d.]+)", log)
    assert found, log
    return float(found.group(1)), float(found.group(2))


def test_qlora_nf4_with_paged_adamw_8bit_twice_in_one_process(tmp_path, small_real_model):
    from studio.telemetry.paged import read_paged_totals

    settings = {
        "model": {"source": str(small_real_model)},
        "method": {"name": "qlora", "rank": 16, "alpha": 32, "target_modules": "all-linear"},
        "training": {"max_steps": 3, "batch_size": 4, "optimizer": "paged_adamw_8bit"},
    }
    first_dir, first = trained(tmp_path / "first", settings)
    assert "fast path: fused linear cross-entropy off" in first
    registered, freed = _released(first)
    assert registered > 0 and freed == registered, first
    assert read_paged_totals() == ()
    second_dir, second = trained(tmp_path / "second", settings)
    # The second run's paged state is its own, not added to the first run's.
    assert _released(second)[0] == registered, second
    finite_losses(first_dir)
    finite_losses(second_dir)


def test_qlora_padding_free_batches_pass_the_isolation_check(tmp_path, small_real_model):
    _, log = trained(
        tmp_path,
        {
            "model": {"source": str(small_real_model)},
            "method": {"name": "qlora", "rank": 8, "alpha": 16},
            "training": {"max_steps": 2, "batch_size": 4, "padding_free": "on"},
        },
    )
    assert "fast path: padding-free batches on" in log
    assert "off after all" not in log, log


@needs_module("liger_kernel")
def test_liger_on_then_off_in_one_process(tmp_path) -> None:
    from transformers import AutoModelForCausalLM
    from transformers.models.llama import modeling_llama

    from studio.chat import ChatModel, resolve_target
    from studio.models.tiny import ensure_tiny_model

    norm, forward = modeling_llama.LlamaRMSNorm, modeling_llama.LlamaForCausalLM.forward
    on_dir, on = trained(
        tmp_path / "on", {"training": {"max_steps": 3, "batch_size": 4, "liger_kernels": "on"}}
    )
    assert "fast path: liger kernels on" in on, on
    assert modeling_llama.LlamaRMSNorm is norm
    assert modeling_llama.LlamaForCausalLM.forward is forward
    _, off = trained(
        tmp_path / "off", {"training": {"max_steps": 3, "batch_size": 4, "liger_kernels": "off"}}
    )
    assert "fast path: liger kernels off (training.liger_kernels: off)" in off
    fresh = AutoModelForCausalLM.from_pretrained(ensure_tiny_model())
    assert not [m for m in fresh.modules() if "Liger" in type(m).__name__]
    chat = ChatModel.load(resolve_target(on_dir))
    try:
        (model,) = chat.modes.models()[:1]
        assert not [m for m in model.modules() if "Liger" in type(m).__name__]
        assert chat.reply([], QUESTION)
    finally:
        chat.close()


def _flash_attention() -> str | None:
    from transformers.utils import is_flash_attn_2_available, is_flash_attn_3_available

    if is_flash_attn_2_available():
        return "flash_attention_2"
    if is_flash_attn_3_available():
        return "flash_attention_3"
    return None


def test_flash_attention_with_padding_free_batches(tmp_path) -> None:
    kernel = _flash_attention()
    if kernel is None:
        pytest.skip("neither flash-attn nor flash_attn_interface is installed")
    run_dir, log = trained(
        tmp_path,
        {
            "model": {"source": "tiny-demo", "attn_implementation": kernel},
            "training": {"max_steps": 3, "batch_size": 4},
        },
    )
    assert f"fast path: attention {kernel}" in log
    assert f"padding-free batches on (variable-length {kernel})" in log, log
    assert "off after all" not in log
    finite_losses(run_dir)


def test_activation_offloading(tmp_path) -> None:
    run_dir, log = trained(
        tmp_path, {"training": {"max_steps": 3, "batch_size": 4, "activation_offloading": True}}
    )
    assert "fast path: activation offloading on" in log, log
    assert "fast path: gradient checkpointing on" in log
    finite_losses(run_dir)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_full_fine_tune_trains_float32_master_weights(tmp_path, precision: str) -> None:
    # fp16 weights under a gradient scaler used to raise "Attempting to unscale FP16 gradients".
    run_dir, log = trained(
        tmp_path,
        {
            "method": {"name": "full"},
            "training": {
                "max_steps": 4,
                "batch_size": 4,
                "learning_rate": 1e-5,
                "precision": precision,
            },
        },
    )
    finite_losses(run_dir)
    assert "Attempting to unscale" not in log


def test_chat_with_compare_on_cuda(lora_run: Path, tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from studio.chat import ChatModel, GenerationSettings, resolve_target

    chat = ChatModel.load(resolve_target(lora_run))
    try:
        assert chat.device == "cuda" and chat.has_adapter
        replies = chat.compare([], QUESTION, GenerationSettings(max_new_tokens=16))
        assert replies.base and replies.adapter
        base = chat.next_token_logits([], QUESTION, use_adapter=False)
        tuned = chat.next_token_logits([], QUESTION, use_adapter=True)
        assert not torch.equal(base, tuned)
        ids = chat.encode([], QUESTION).ids
    finally:
        chat.close()
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    reference = reference.to("cuda").eval()
    with torch.inference_mode():
        expected = reference(input_ids=torch.tensor([ids], device="cuda")).logits[0, -1]
    # bf16 on the GPU: the base side is the base model up to bf16 rounding.
    assert torch.allclose(base, expected.float().cpu(), atol=5e-2, rtol=5e-2)


def test_nvml_reads_this_gpu_with_real_numbers() -> None:
    import torch

    from studio.telemetry import TelemetrySampler
    from studio.telemetry.device_map import map_cuda_to_gpu
    from studio.telemetry.torch_memory import cuda_device_uuids

    torch.zeros(1, device="cuda")  # a CUDA context, so that this process shows up
    sampler = TelemetrySampler()
    try:
        snapshot = sampler.sample_once()
    finally:
        sampler.close()
    assert snapshot.gpus, "NVML found no GPU"
    mapping = map_cuda_to_gpu(1, snapshot.gpus, cuda_device_uuids())
    gpu = snapshot.gpu(mapping[0])
    assert gpu is not None and gpu.memory_total_bytes
    assert abs(gpu.memory_total_bytes - torch.cuda.get_device_properties(0).total_memory) < (
        0.1 * gpu.memory_total_bytes
    )
    assert gpu.memory_used_bytes and gpu.name and "NVIDIA" in gpu.name


def test_fit_check_warns_before_a_run_that_cannot_fit(tmp_path) -> None:
    from transformers import LlamaConfig

    from bench.shapes import SHAPES
    from studio.config import config_from_dict
    from studio.engine.memory_check import warn_if_it_will_not_fit

    folder = tmp_path / "llama-3-8b"
    shape = {k: v for k, v in SHAPES["llama-3-8b"].items() if k != "model_type"}
    LlamaConfig(**shape).save_pretrained(folder)
    config = config_from_dict(
        {
            "model": {"source": str(folder)},
            "method": {"name": "full"},
            "data": {"max_length": 8192},
            "training": {"batch_size": 64},
        }
    )
    lines: list[tuple[str, str]] = []
    warn_if_it_will_not_fit(
        config, str(folder), "cuda", lambda text, level="info": lines.append((level, text))
    )
    warnings = [text for level, text in lines if level == "warning"]
    assert warnings and "GPU" in warnings[0], lines


def test_chat_4bit_estimate_covers_what_loading_takes(small_real_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from studio.chat.memory import estimate_chat_bytes
    from studio.config import ModelSettings

    estimate = estimate_chat_bytes(
        ModelSettings(), str(small_real_model), "bfloat16", quantized=True
    )
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    model = AutoModelForCausalLM.from_pretrained(
        small_real_model,
        quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        ),
        device_map={"": 0},
    )
    weights = torch.cuda.memory_allocated() - before
    del model
    assert estimate is not None and estimate >= weights, (estimate, weights)


def test_the_peak_table_knows_this_gpu() -> None:
    import torch

    from bench.flops import stated_peak_tflops

    name = torch.cuda.get_device_name(0)
    if any(key in name for key in ("H100", "H200", "A100", "L40", "L4")):
        assert stated_peak_tflops(name) is not None, name


def test_torch_compile_or_a_reason(tmp_path) -> None:
    from studio.engine.fast_path import find_c_compiler

    run_dir, log = trained(
        tmp_path, {"training": {"max_steps": 3, "batch_size": 4, "torch_compile": True}}
    )
    if find_c_compiler() is None:
        assert "fast path: torch.compile off (Triton builds" in log
    else:
        assert "fast path: torch.compile on" in log
    finite_losses(run_dir)
