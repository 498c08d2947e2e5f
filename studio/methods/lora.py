"""LoRA and QLoRA through peft: low-rank updates beside chosen weight matrices.

LoRA learns `B @ A` (rank r) beside each target matrix, scaled by alpha / r (rsLoRA: alpha /
sqrt(r)); DoRA also learns a magnitude per output channel. QLoRA is LoRA on a base loaded in
4 bits (NF4 or FP4, optionally double-quantized) through bitsandbytes, which runs on CPU too
(bitsandbytes 0.50); the base goes through `prepare_model_for_kbit_training` (norms and
embeddings in float32, input gradients on for checkpointing). On CPU the paged optimizers
fall back to their non-paged versions (bitsandbytes warns once): same maths, no paging.

Merging a QLoRA adapter: peft's `merge_and_unload` on a 4-bit base adds the update to the
dequantized weight and quantizes the sum again, losing the update's small values in 4-bit
rounding. `merge` here dequantizes the base first and merges into plain weights, which is
what a standalone model needs anyway.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.config import LoraSettings, QLoraSettings
from studio.errors import ConfigError
from studio.methods.memory_plan import MemoryPlan, targeted_linears

if TYPE_CHECKING:
    from studio.models.shape import ModelShape

SETTINGS = (LoraSettings, QLoraSettings)

if TYPE_CHECKING:
    from studio.models.loading import DevicePlan


def quantization_config(settings: LoraSettings, plan: DevicePlan) -> Any:
    if not isinstance(settings, QLoraSettings):
        return None
    import torch
    from transformers import BitsAndBytesConfig

    compute: str = settings.compute_dtype
    if compute == "auto":
        compute = plan.dtype_name if plan.device == "cuda" else "float32"
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=settings.quant_type,
        bnb_4bit_use_double_quant=settings.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, compute),
        bnb_4bit_quant_storage=torch.uint8,
    )


def peft_config(settings: LoraSettings, model: Any = None) -> Any:
    """peft's LoraConfig; with `model`, its targets found and checked in that model (fused
    projections, mixture-of-experts tensors: see `studio.methods.targets`)."""
    from peft import LoraConfig, TaskType

    modules: Any = settings.target_modules
    parameters: list[str] = []
    if model is not None:
        from studio.methods.targets import lora_targets

        targets = lora_targets(model, settings.target_modules)
        modules, parameters = targets.modules, targets.parameters
        if parameters:
            check_expert_settings(settings, parameters)
    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=settings.rank,
        # peft annotates an int; a float alpha works the same (scaling = alpha / r).
        lora_alpha=settings.effective_alpha,
        lora_dropout=0.0 if parameters else settings.dropout,
        target_modules=modules,
        target_parameters=parameters or None,
        use_rslora=settings.use_rslora,
        use_dora=settings.use_dora,
    )


def check_expert_settings(settings: LoraSettings, parameters: list[str]) -> None:
    """peft adapts fused expert tensors (`ParamWrapper`) without dropout or DoRA, and
    bitsandbytes quantizes linear layers only: refuse what would not work as asked."""
    experts = ", ".join(parameters)
    if isinstance(settings, QLoraSettings):
        raise ConfigError(
            f"QLoRA cannot quantize this mixture-of-experts model: its experts are fused 3-D "
            f"tensors ({experts}), which bitsandbytes does not quantize, so they would stay in "
            "16 bits, most of the model's memory",
            advice="use method lora (16-bit base, experts adapted), or a dense model for QLoRA",
        )
    if settings.use_dora:
        raise ConfigError(
            f"LoRA on this model's fused expert tensors ({experts}) cannot use DoRA: peft "
            "adapts them through parameter wrappers that do not support it",
            advice="set method.use_dora: false, or list method.target_modules without the "
            "experts (e.g. [q_proj, k_proj, v_proj, o_proj])",
        )


def expert_dropout_note(settings: LoraSettings, config: Any) -> str | None:
    """Why the run trains without the dropout asked for, or None. peft's expert wrappers take
    no dropout and one LoraConfig serves every target, so a mixture-of-experts model trains
    with none: a regulariser lost is better than refusing the default settings."""
    if settings.dropout and config.lora_dropout != settings.dropout:
        return (
            f"method.dropout {settings.dropout} not applied: peft adapts this model's fused "
            "expert tensors without dropout, so the run uses 0 (list method.target_modules "
            "without the experts to keep it)"
        )
    return None


def is_quantized(model: Any) -> bool:
    return any(p.__class__.__name__ == "Params4bit" for p in model.parameters())


def apply(model: Any, settings: LoraSettings, context: Any = None) -> Any:
    from peft import get_peft_model, prepare_model_for_kbit_training

    config = peft_config(settings, model)  # checked before the model is prepared
    note = expert_dropout_note(settings, config)
    if note is not None and context is not None:
        context.note(note, "warning")
    if isinstance(settings, QLoraSettings):
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=bool(getattr(context, "gradient_checkpointing", False)),
        )
    return get_peft_model(model, config)


def save(model: Any, folder: Path, settings: LoraSettings) -> None:
    model.save_pretrained(str(folder))


def load(base_model: Any, folder: Path, settings: LoraSettings, *, trainable: bool = False) -> Any:
    from peft import PeftModel, prepare_model_for_kbit_training

    if trainable and is_quantized(base_model):
        base_model = prepare_model_for_kbit_training(base_model, use_gradient_checkpointing=False)
    return PeftModel.from_pretrained(base_model, str(folder), is_trainable=trainable)


def merge(model: Any) -> Any:
    """A plain transformers model with the LoRA update folded into the weights."""
    if not is_quantized(model):
        return model.merge_and_unload()
    import copy

    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    adapter = model.active_adapter
    config = copy.deepcopy(model.peft_config[adapter])
    state = get_peft_model_state_dict(model, adapter_name=adapter)
    base = model.unload().dequantize()
    plain = get_peft_model(base, config)
    set_peft_model_state_dict(plain, state)
    return plain.merge_and_unload()


# ------------------------------------------------------------------ memory

# bitsandbytes 4-bit: blocks of 64 weights share one fp32 scale; double quantization stores
# those scales in 8 bits with an fp32 scale per 256 of them.
QUANT_BLOCK = 64
NESTED_BLOCK = 256
# Expert tensors by name, and the per-expert layer names users write for them.
EXPERT_ALIASES = {
    "gate_up_proj": ("gate_up_proj", "gate_proj", "up_proj", "w1", "w3"),
    "down_proj": ("down_proj", "w2"),
}


# Mixtures of experts whose transformers 4 checkpoints peft 0.21 converts (transformers'
# `_MODEL_TO_CONVERSION_PATTERN` to "mixtral" or "qwen2_moe"): for "all-linear" it also adapts
# the router and gives the fused gate_up_proj rank 2r (the two matrices it replaces had r each).
PEFT_CONVERTED_MOE = frozenset(
    [
        "mixtral",
        "minimax",
        "minimax_m2",
        "afmoe",
        "deepseek_v2",
        "deepseek_v3",
        "deepseek_v32",
        "dots1",
        "ernie4_5_moe",
        "glm4_moe",
        "glm4_moe_lite",
        "glm_moe_dsa",
        "glm4v_moe",
        "longcat_flash",
        "solar_open",
        "mellum",
        "qwen3_moe",
        "beam",
        "qwen3_omni_moe",
        "qwen3_omni_moe_thinker",
        "qwen3_omni_moe_text",
        "qwen3_next",
        "hunyuan_v1_moe",
        "flex_olmo",
        "olmoe",
        "sarvam_mla",
        "exaone_moe",
        "cohere2_moe",
    ]
)


def _expert_targets(shape: ModelShape, targets: Any) -> list[tuple[str, int, int, int]]:
    """(name, in, out, rank multiple) of the fused expert tensors LoRA adapts
    (`studio.methods.targets.lora_targets`, and peft's own conversion)."""
    converted = shape.model_type in PEFT_CONVERTED_MOE
    experts = [
        (name, fan_in, fan_out, 2 if converted and name.endswith("gate_up_proj") else 1)
        for name, fan_in, fan_out in shape.expert_tensors()
    ]
    if targets == "all-linear":
        return experts
    names = tuple(targets or ())
    return [
        (name, fan_in, fan_out, 1)
        for name, fan_in, fan_out, _ in experts
        if any(target in EXPERT_ALIASES[name.split(".")[-1]] for target in names)
    ]


FAN_IN = {
    "q_proj": "attn_norm",
    "k_proj": "attn_norm",
    "v_proj": "attn_norm",
    "qkv_proj": "attn_norm",
    "c_attn": "attn_norm",
    "query_key_value": "attn_norm",
    "o_proj": "attn_out",
    "attn.c_proj": "attn_out",
    "dense": "attn_out",
    "gate_proj": "mlp_norm",
    "up_proj": "mlp_norm",
    "gate_up_proj": "mlp_norm",
    "c_fc": "mlp_norm",
    "dense_h_to_4h": "mlp_norm",
    "down_proj": "mlp_hidden",
    "mlp.c_proj": "mlp_hidden",
    "dense_4h_to_h": "mlp_hidden",
}


def fan_in_name(module: tuple[str, int, int]) -> str:
    """Which tensor feeds a linear layer: the layers fed by the same tensor share one copy."""
    name = module[0]
    return FAN_IN.get(".".join(name.split(".")[-2:]), FAN_IN.get(name.split(".")[-1], name))


def inputs_sizes(shape: ModelShape, inputs: set[str]) -> list[int]:
    sizes = {
        "attn_norm": shape.hidden_size,
        "attn_out": shape.q_size,  # reshaped from attention's output: a copy of its own
        "mlp_norm": shape.hidden_size,
        "mlp_hidden": shape.intermediate_size,
    }
    return [sizes.get(name, shape.hidden_size) for name in inputs]


def memory_plan(
    shape: ModelShape, settings: LoraSettings, *, activation_bytes: int, weight_bytes: int
) -> MemoryPlan:
    """Rank-r matrices beside the targeted linear layers (and fused expert tensors); QLoRA's
    base weights at 4 bits (see `quantized_weight_bytes`)."""
    act, layers = activation_bytes, shape.num_layers
    modules = targeted_linears(shape, settings.target_modules, ("q_proj", "v_proj"))
    rank = settings.rank
    per_layer = sum(rank * (fan_in + fan_out) for _, fan_in, fan_out in modules)
    # peft's ParamWrapper on a fused expert tensor: A (r x experts, in), B (out, r x experts).
    experts = _expert_targets(shape, settings.target_modules)
    per_layer += sum(
        rank * multiple * shape.num_experts * (fan_in + fan_out)
        for _, fan_in, fan_out, multiple in experts
    )
    if (
        experts
        and settings.target_modules == "all-linear"
        and (shape.model_type in PEFT_CONVERTED_MOE)
    ):
        per_layer += rank * (shape.hidden_size + shape.num_experts)  # the router
    if settings.use_dora:
        per_layer += sum(fan_out for _, _, fan_out in modules)
    # lora_A keeps its input: without dropout one copy per distinct input tensor (q, k
    # and v share theirs), with dropout a dropped-out copy and a mask per module. lora_B
    # keeps the rank-r intermediate; DoRA keeps the base output for the magnitude.
    if settings.dropout:
        per_token = sum((act + 1) * fan_in for _, fan_in, _ in modules)
    else:
        inputs = {fan_in_name(module) for module in modules}
        per_token = sum(act * size for size in inputs_sizes(shape, inputs))
    per_token += sum(act * rank for _ in modules)
    if settings.use_dora:
        per_token += sum(act * fan_out for _, _, fan_out in modules)
    trainable = layers * per_layer
    base_weights: int | None = None
    notes: tuple[str, ...] = ()
    if isinstance(settings, QLoraSettings):
        base_weights, notes = quantized_weight_bytes(shape, settings, weight_bytes)
    return MemoryPlan(
        trainable,
        trainable,
        layers_with_grad=layers,
        per_token_layer=per_token,
        base_weight_bytes=base_weights,
        notes=notes,
    )


def quantized_weight_bytes(
    shape: ModelShape, settings: QLoraSettings, weight_bytes: int
) -> tuple[int, tuple[str, ...]]:
    """Bytes of a 4-bit base and what to say about it: linear layers at 4 bits plus their
    quantization constants, the rest upcast to fp32 by `prepare_model_for_kbit_training`, fused
    experts unquantized (bitsandbytes quantizes linear layers only; QLoRA refuses such models)."""
    quantized = shape.linear_parameters
    scale = (
        1 / QUANT_BLOCK + 4 / (QUANT_BLOCK * NESTED_BLOCK)
        if settings.double_quant
        else 4 / QUANT_BLOCK
    )
    experts = shape.expert_parameters
    rest = shape.num_parameters - quantized - experts
    weights = int(quantized * (0.5 + scale)) + rest * 4 + experts * weight_bytes
    notes = ["QLoRA: linear layers in 4 bits; embeddings, norms and head upcast to fp32"]
    if experts:
        notes.append(
            f"QLoRA is refused on this model: bitsandbytes does not quantize its fused "
            f"experts ({experts:,} parameters), counted here unquantized; use LoRA"
        )
    return weights, tuple(notes)
