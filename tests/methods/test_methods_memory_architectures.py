"""The memory estimate on every architecture of the matrix: parameters counted exactly as the
model holds them (fused projections, biases, extra norms, position embeddings, fused experts),
trainable parameters exactly as each method makes them, and the peak of real training steps on
CPU within a stated margin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from studio.config import (
    FreezeSettings,
    FullSettings,
    IA3Settings,
    LoraSettings,
    QLoraSettings,
)
from studio.formatting import GIB
from studio.methods.memory import estimate_memory
from studio.models.shape import ModelShape
from tests.support.architectures import ARCHITECTURES
from tests.support.method_models import load_for_method

METHODS = [
    LoraSettings(rank=4, dropout=0.0),
    LoraSettings(rank=4, dropout=0.0, target_modules=["down_proj", "o_proj"], use_dora=False),
    QLoraSettings(rank=4, dropout=0.0),
    IA3Settings(),
    FullSettings(),
    FreezeSettings(trainable_layers=1, trainable_patterns=["lm_head"]),
]
# Names each architecture calls its layers, for the LoRA case with a list of names.
NAMED_TARGETS = {
    "gpt2": ["mlp.c_proj", "c_attn"],
    "gpt_neox": ["dense_4h_to_h", "query_key_value"],
}


@pytest.mark.parametrize("model_type", list(ARCHITECTURES))
def test_parameters_counted_exactly(model_type: str, architecture_dir) -> None:
    from transformers import AutoModelForCausalLM

    folder = architecture_dir(model_type)
    model = AutoModelForCausalLM.from_pretrained(folder)
    shape = ModelShape.from_model(folder)  # config.json, as the Models screen reads it
    assert shape.num_parameters == model.num_parameters()
    names = {name.split(".")[-2] for name, _ in model.named_parameters() if ".0." in name}
    layers = {name.split(".")[-1] for name, _, _ in shape.layer_linears()}
    assert layers <= names, f"estimated layers not in the model: {layers - names}"


@pytest.mark.parametrize("model_type", list(ARCHITECTURES))
def test_trainable_parameters_counted_exactly(model_type: str, architecture_dir) -> None:
    from studio.errors import ConfigError
    from studio.methods.registry import trainable_parameters

    folder = architecture_dir(model_type)
    for settings in METHODS:
        if isinstance(settings, LoraSettings) and isinstance(settings.target_modules, list):
            names = NAMED_TARGETS.get(model_type, settings.target_modules)
            settings = settings.model_copy(update={"target_modules": names})
        estimate = estimate_memory(folder, settings, device="cpu")
        model, implementation = load_for_method(folder, settings)
        if settings.name == "qlora" and model_type == "qwen2_moe":
            with pytest.raises(ConfigError, match="QLoRA cannot quantize"):
                implementation.apply(model, settings)
            assert any("QLoRA is refused" in note for note in estimate.notes)
            continue
        model = implementation.apply(model, settings)
        trainable, total = trainable_parameters(model)
        assert estimate.trainable_parameters == trainable, settings
        if settings.name != "qlora":
            assert estimate.total_parameters == total, settings


def test_fused_qkv_lora_is_not_over_counted() -> None:
    """Phi-3-mini's shape: LoRA on one fused qkv_proj is one A and one B, not three."""
    phi3_mini = {
        "model_type": "phi3",
        "vocab_size": 32064,
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "tie_word_embeddings": False,
    }
    estimate = estimate_memory(phi3_mini, LoraSettings(rank=16), precision="bf16")
    # per layer: qkv 16 (3072 + 9216), o 16 (3072 + 3072), gate_up 16 (3072 + 16384),
    # down 16 (8192 + 3072)
    assert estimate.trainable_parameters == 32 * 16 * (12288 + 6144 + 19456 + 11264)
    assert ModelShape.from_dict(phi3_mini).num_parameters == 3_821_079_552  # Phi-3-mini


def test_mixtral_qlora_counts_the_unquantized_experts() -> None:
    mixtral = {
        "model_type": "mixtral",
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
        "tie_word_embeddings": False,
    }
    shape = ModelShape.from_dict(mixtral)
    assert shape.num_parameters == 46_702_792_704  # Mixtral-8x7B
    estimate = estimate_memory(mixtral, QLoraSettings(rank=16), precision="bf16")
    assert shape.expert_parameters * 2 / GIB == 84  # the experts alone, in bf16
    assert estimate.weights > shape.expert_parameters * 2
    lora = estimate_memory(mixtral, LoraSettings(rank=16, dropout=0.0), precision="bf16")
    # Experts adapted as peft converts Mixtral: gate_up_proj at rank 2r (w1 and w3 had r each),
    # down_proj at r, both x 8 experts; the router at r; plus attention.
    experts = 32 * (8 * 32 * (4096 + 28672) + 8 * 16 * (14336 + 4096) + 16 * (4096 + 8))
    attention = 32 * 16 * ((4096 + 4096) + 2 * (4096 + 1024) + (4096 + 4096))
    assert lora.trainable_parameters == experts + attention


# ------------------------------------------------------------------ against measured RSS

# Each architecture a few times wider than the matrix's, so that RSS measures the model and
# not the allocator's noise.
WIDE = {"hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4}


def wide_config(model_type: str) -> dict[str, Any]:
    class_name, kwargs = ARCHITECTURES[model_type]
    config = {**kwargs, "vocab_size": 4096}
    if model_type == "gpt2":
        config.update(n_embd=256, n_head=4)
    else:
        config.update(WIDE)
    if model_type == "qwen2_moe":
        config.update(moe_intermediate_size=256, shared_expert_intermediate_size=512)
    return {"class_name": class_name, **config}


# Full fine-tuning on each (weights, gradients and optimizer state follow the parameter
# count), LoRA where the layers are fused or Conv1D.
MEASURED_LORA = ("phi3", "gpt2", "qwen2_moe")


def measured_methods(model_type: str) -> list[Any]:
    lora = [LoraSettings(rank=16, dropout=0.0)] if model_type in MEASURED_LORA else []
    return [FullSettings(), *lora]


PROBE = r"""
import ctypes, gc, json, re, sys
import torch
torch.set_num_threads(1)
import transformers
from pydantic import TypeAdapter
from studio.config import MethodSettings
from studio.methods.registry import MethodContext, get_method


def status(key):
    return 1024 * int(re.search(key + r":\s+(\d+)", open("/proc/self/status").read()).group(1))


def build(spec):
    kwargs = dict(spec["config"])
    config = getattr(transformers, kwargs.pop("class_name"))(**kwargs)
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(config)


def train(model, steps, batch, length, vocab):
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, foreach=False)
    ids = torch.randint(0, vocab, (batch, length))
    mask = torch.ones_like(ids)
    mask[0, length // 2:] = 0
    labels = ids.masked_fill(mask == 0, -100)
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


for spec in json.loads(sys.argv[1]):
    settings = TypeAdapter(MethodSettings).validate_python(spec["method"])
    implementation = get_method(settings.name).implementation()
    warm = implementation.apply(build(spec), settings, MethodContext())  # imports, buffers
    train(warm, 1, 1, 16, spec["config"]["vocab_size"])
    del warm
    gc.collect()
    # Hand freed heap pages back first: else glibc may trim them during the measurement and
    # the peak shows less than the baseline.
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    baseline = status("VmRSS")
    model = implementation.apply(build(spec), settings, MethodContext())
    open("/proc/self/clear_refs", "w").write("5")
    train(model, 2, spec["batch_size"], spec["max_length"], spec["config"]["vocab_size"])
    print(json.dumps({"growth": status("VmHWM") - baseline}), flush=True)
    del model
    gc.collect()
"""


@pytest.fixture(scope="module")
def measured_architectures() -> dict[tuple[str, str], int]:
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    cases = [(m, s) for m in ARCHITECTURES for s in measured_methods(m)]
    specs = [
        {
            "config": wide_config(model_type),
            "method": settings.model_dump(),
            "batch_size": 4,
            "max_length": 128,
        }
        for model_type, settings in cases
    ]
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(specs)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        # See test_methods_memory.measure: every tensor its own mapping, so RSS is live memory.
        env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    peaks = [json.loads(line)["growth"] for line in result.stdout.splitlines() if line[:1] == "{"]
    assert len(peaks) == len(cases)
    return {(m, s.name): peak for (m, s), peak in zip(cases, peaks, strict=True)}


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("model_type", list(ARCHITECTURES))
def test_estimate_is_close_to_measured_cpu_peak_per_architecture(
    model_type: str, measured_architectures: dict[tuple[str, str], int]
) -> None:
    config = {key: value for key, value in wide_config(model_type).items() if key != "class_name"}
    import transformers

    class_name = wide_config(model_type)["class_name"]
    shape_source = getattr(transformers, class_name)(**config)
    for settings in measured_methods(model_type):
        estimate = estimate_memory(
            shape_source, settings, batch_size=4, max_length=128, device="cpu"
        )
        measured = measured_architectures[(model_type, settings.name)]
        ratio = estimate.total / measured
        print(f"{model_type} {settings.name}: estimate {estimate.total:,} measured {measured:,}")
        # Measured here: 0.85 (Gemma2 full with eager attention, Qwen2-MoE LoRA) to 1.17
        # (GPT-NeoX full). The stated tolerance, as for the Llama methods in
        # test_methods_memory.py: 0.75 to 1.35.
        assert 0.75 < ratio < 1.35, (model_type, settings.name, ratio, estimate.summary())


@pytest.mark.parametrize(
    ("class_name", "experts"),
    [
        ("MixtralConfig", {"num_local_experts": 4, "num_experts_per_tok": 2}),
        (
            "Qwen3MoeConfig",
            {
                "num_experts": 4,
                "num_experts_per_tok": 2,
                "head_dim": 16,
                "moe_intermediate_size": 32,
            },
        ),
    ],
)
def test_other_mixtures_of_experts_counted_exactly(class_name: str, experts: dict) -> None:
    """Mixtral and Qwen3-MoE (no shared expert): parameters, and LoRA on their experts."""
    import transformers

    from studio.methods import lora
    from studio.methods.registry import trainable_parameters

    config = getattr(transformers, class_name)(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        **experts,
    )
    model = transformers.AutoModelForCausalLM.from_config(config)
    assert ModelShape.from_model(config).num_parameters == model.num_parameters()
    settings = LoraSettings(rank=4, dropout=0.0)
    trainable, _ = trainable_parameters(lora.apply(model, settings))
    assert estimate_memory(config, settings, device="cpu").trainable_parameters == trainable
