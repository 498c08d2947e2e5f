"""LoRA and QLoRA through peft: low-rank updates beside chosen weight matrices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.config_methods import LoraSettings, QLoraSettings


def quantization_config(settings: LoraSettings, plan: Any) -> Any:
    if not isinstance(settings, QLoraSettings):
        return None
    import torch
    from transformers import BitsAndBytesConfig

    compute = settings.compute_dtype
    if compute == "auto":
        compute = plan.dtype_name if plan.device == "cuda" else "float32"
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=settings.quant_type,
        bnb_4bit_use_double_quant=settings.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, compute),
        bnb_4bit_quant_storage=torch.uint8,
    )


def peft_config(settings: LoraSettings) -> Any:
    from peft import LoraConfig, TaskType

    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=settings.rank,
        lora_alpha=settings.effective_alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        use_rslora=settings.use_rslora,
        use_dora=settings.use_dora,
    )


def apply(model: Any, settings: LoraSettings, context: Any) -> Any:
    from peft import get_peft_model, prepare_model_for_kbit_training

    if isinstance(settings, QLoraSettings):
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=context.gradient_checkpointing
        )
    return get_peft_model(model, peft_config(settings))


def save(model: Any, folder: Path, settings: LoraSettings) -> None:
    model.save_pretrained(str(folder))


def load(base_model: Any, folder: Path, settings: LoraSettings) -> Any:
    from peft import PeftModel

    return PeftModel.from_pretrained(base_model, str(folder))


def merge(model: Any) -> Any:
    return model.merge_and_unload()
