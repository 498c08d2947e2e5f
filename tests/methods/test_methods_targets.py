"""Targets on real architectures: attention kernels the architecture supports, LoRA and IA3
layers found on fused and mixture-of-experts models, names that match nothing refused with
the names that exist, and a resume that would not restore every trained tensor refused."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from studio.config import IA3Settings, LoraSettings, QLoraSettings
from studio.errors import ConfigError, ModelError
from studio.methods.registry import MethodContext


def load(folder: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder)


# ------------------------------------------------------------------ attention


def test_attention_auto_picks_a_kernel_the_architecture_has(architecture_dir) -> None:
    from studio.engine.fast_path import Machine, choose_attention
    from studio.models.attention import supported_attention
    from studio.models.loading import DevicePlan

    cpu = DevicePlan("cpu", "float32", bf16=False, fp16=False)
    gemma2 = supported_attention(str(architecture_dir("gemma2")))
    assert gemma2 is not None and "sdpa" not in gemma2 and "eager" in gemma2
    choice = choose_attention("auto", cpu, Machine(cuda=False), gemma2)
    assert choice.value == "eager" and not choice.warn
    assert choice.line == "fast path: attention eager (this architecture does not support sdpa)"
    asked = choose_attention("sdpa", cpu, Machine(cuda=False), gemma2)
    assert asked.value == "eager" and asked.warn
    llama = supported_attention(str(architecture_dir("llama")))
    assert choose_attention("auto", cpu, Machine(cuda=False), llama).value == "sdpa"
    gpu = DevicePlan("cuda", "bfloat16", bf16=True, fp16=False)
    flash = Machine(cuda=True, flash_attention=True)
    assert choose_attention("auto", gpu, flash, llama).value == "flash_attention_2"
    assert supported_attention("/no/such/folder") is None


def test_an_unsupported_kernel_does_not_fail_the_load(architecture_dir) -> None:
    from studio.config import ModelSettings
    from studio.models.loading import DevicePlan, load_base_model

    settings = ModelSettings(source=str(architecture_dir("gemma2")), attn_implementation="sdpa")
    model = load_base_model(settings, DevicePlan("cpu", "float32", bf16=False, fp16=False))
    assert model.config._attn_implementation == "eager"


# ------------------------------------------------------------------ IA3


@pytest.mark.parametrize(
    ("model_type", "targets", "feedforward"),
    [
        ("phi3", {"qkv_proj", "down_proj"}, {"down_proj"}),
        ("qwen2_moe", {"k_proj", "v_proj", "down_proj"}, {"down_proj"}),
        ("gpt_neox", {"query_key_value", "dense_4h_to_h"}, {"dense_4h_to_h"}),  # peft's own
    ],
)
def test_ia3_finds_its_layers_where_peft_has_no_default(
    model_type: str, targets: set[str], feedforward: set[str], architecture_dir
) -> None:
    from studio.methods import ia3

    notes: list[tuple[str, str]] = []
    context = SimpleNamespace(note=lambda text, level="info": notes.append((level, text)))
    model = ia3.apply(load(architecture_dir(model_type)), IA3Settings(), context)
    config = model.peft_config["default"]
    assert set(config.target_modules) == targets
    assert set(config.feedforward_modules) == feedforward
    trained = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trained and all("ia3_l" in name for name in trained)
    assert all(any(f".{target}." in name for name in trained) for target in targets)
    if model_type == "qwen2_moe":
        assert notes and "fused expert tensors stay as they are" in notes[0][1]


def test_ia3_refuses_names_that_are_not_in_the_model(architecture_dir) -> None:
    from studio.methods import ia3

    model = load(architecture_dir("phi3"))
    settings = IA3Settings(target_modules=["k_proj", "v_proj", "down_proj"])
    with pytest.raises(ConfigError) as caught:
        ia3.apply(model, settings)
    message = str(caught.value)
    assert "k_proj, v_proj match no layer of Phi3ForCausalLM" in message
    assert "only down_proj would train" in message and "qkv_proj" in message
    assert "o_proj, qkv_proj, gate_up_proj, down_proj" in caught.value.advice


# ------------------------------------------------------------------ LoRA


def test_lora_refuses_a_list_that_matches_only_part(architecture_dir) -> None:
    from studio.methods import lora

    with pytest.raises(ConfigError, match=r"q_proj, v_proj match no layer of GPT2LMHeadModel"):
        lora.apply(
            load(architecture_dir("gpt2")), LoraSettings(target_modules=["q_proj", "v_proj"])
        )
    model = lora.apply(
        load(architecture_dir("gpt2")), LoraSettings(target_modules=["c_attn"], dropout=0.0)
    )
    trained = {name.split(".")[-4] for name, p in model.named_parameters() if p.requires_grad}
    assert trained == {"c_attn"}


def test_lora_adapts_fused_experts(architecture_dir) -> None:
    from studio.methods import lora

    model = lora.apply(load(architecture_dir("qwen2_moe")), LoraSettings(rank=4, dropout=0.0))
    config = model.peft_config["default"]
    assert set(config.target_parameters) == {"experts.gate_up_proj", "experts.down_proj"}
    trained = [name for name, p in model.named_parameters() if p.requires_grad]
    assert any(".mlp.experts.lora_A" in name for name in trained)  # down_proj's wrapper
    assert any(".mlp.experts.base_layer.lora_A" in name for name in trained)  # gate_up_proj's
    assert any("shared_expert.gate_proj.lora_A" in name for name in trained)
    # Per-expert names mean the fused tensors, and the shared expert's layer of that name.
    only_down = lora.apply(
        load(architecture_dir("qwen2_moe")), LoraSettings(target_modules=["down_proj"], dropout=0)
    )
    assert only_down.peft_config["default"].target_parameters == ["experts.down_proj"]


def test_lora_settings_the_experts_cannot_take_are_refused(architecture_dir) -> None:
    from studio.methods import lora

    with pytest.raises(ConfigError, match="cannot use DoRA") as caught:
        lora.apply(load(architecture_dir("qwen2_moe")), LoraSettings(dropout=0.0, use_dora=True))
    assert "method.use_dora: false" in caught.value.advice
    # The default dropout trains with none on the experts, and says so in the log.
    notes: list[tuple[str, str]] = []
    context = MethodContext(log=lambda line, level="info": notes.append((level, line)))
    model = lora.apply(load(architecture_dir("qwen2_moe")), LoraSettings(dropout=0.05), context)
    assert model.peft_config["default"].target_parameters
    assert model.peft_config["default"].lora_dropout == 0.0
    assert [level for level, line in notes if "method.dropout 0.05 not applied" in line] == [
        "warning"
    ]
    with pytest.raises(ConfigError, match="QLoRA cannot quantize this mixture-of-experts"):
        lora.apply(load(architecture_dir("qwen2_moe")), QLoraSettings(dropout=0.0))
    # Attention only: no experts, dropout is fine.
    model = lora.apply(
        load(architecture_dir("qwen2_moe")),
        LoraSettings(target_modules=["q_proj", "v_proj"], dropout=0.05),
    )
    assert not model.peft_config["default"].target_parameters


# ------------------------------------------------------------------ resume


def test_resume_refuses_a_checkpoint_missing_trained_tensors(tmp_path: Path, architecture_dir):
    from safetensors.torch import load_file, save_file

    from studio.config import BottleneckSettings, FullSettings
    from studio.methods import bottleneck
    from studio.methods.restore import restore_on_resume

    folder = architecture_dir("llama")
    settings = BottleneckSettings(bottleneck_size=8)
    model = bottleneck.apply(load(folder), settings)
    checkpoint = tmp_path / "checkpoint-2"
    model.save_pretrained(checkpoint)  # the adapter, as the Trainer's checkpoints hold it
    weights = checkpoint / "model.safetensors"
    tensors = load_file(str(weights))
    lost = next(name for name in tensors if name.endswith("up.weight"))
    del tensors[lost]
    save_file(tensors, str(weights), metadata={"format": "pt"})

    def library_load(path: str, model=None) -> None:  # the Trainer's: non-strict
        trainer.model.load_state_dict(load_file(str(Path(path) / "model.safetensors")), False)

    trainer = SimpleNamespace(model=model, _load_from_checkpoint=library_load)
    with torch.no_grad():
        dict(model.named_parameters())[lost].add_(1.0)  # trained on since the checkpoint
    restore_on_resume(trainer, settings)
    with pytest.raises(ModelError, match="would not restore 1 trained tensors") as caught:
        trainer._load_from_checkpoint(str(checkpoint))
    assert lost in str(caught.value)

    # Full and freeze: transformers' loading reports a tensor the checkpoint lacks.
    full = tmp_path / "checkpoint-4"
    load(folder).save_pretrained(full)
    tensors = load_file(str(full / "model.safetensors"))
    del tensors["model.layers.1.mlp.down_proj.weight"]
    save_file(tensors, str(full / "model.safetensors"), metadata={"format": "pt"})
    trainer = SimpleNamespace(model=load(folder), _load_from_checkpoint=None)
    restore_on_resume(trainer, FullSettings())
    with pytest.raises(ModelError, match=r"missing: model\.layers\.1\.mlp\.down_proj\.weight"):
        trainer._load_from_checkpoint(str(full))
