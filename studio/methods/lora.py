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

from studio.config_methods import LoraSettings, QLoraSettings
from studio.errors import ConfigError

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
