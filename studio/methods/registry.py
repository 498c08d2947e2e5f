"""One registry of fine-tuning methods that the config, the TUI and the CLI read from.

Each method family lives in its own module, imported only when a run uses it (they import
torch and peft). A family module provides:

    quantization_config(settings, plan) -> transformers quantization config or None  (optional)
    apply(model, settings, context) -> model ready to train
    save(model, folder, settings) -> None            writes what was trained into `folder`
    load(base_model, folder, settings) -> model       puts it back on a fresh base model
    merge(model) -> plain transformers model          (only when can_merge)
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from studio.config_methods import METHOD_SETTINGS, METHOD_TRAINING_TYPES

METHOD_FILE = "ftstudio_method.json"


@dataclass(frozen=True)
class MethodSpec:
    name: str
    title: str
    summary: str
    module: str
    can_merge: bool
    quantized_base: bool = False

    @property
    def settings_model(self) -> type:
        return METHOD_SETTINGS[self.name]

    @property
    def description(self) -> str:
        return (self.settings_model.__doc__ or self.summary).strip()

    @property
    def training_types(self) -> tuple[str, ...]:
        return METHOD_TRAINING_TYPES[self.name]

    def implementation(self) -> ModuleType:
        return importlib.import_module(self.module)


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("lora", "LoRA", "Low-rank adapters", "studio.methods.lora", can_merge=True),
        MethodSpec(
            "qlora",
            "QLoRA",
            "LoRA on a 4-bit base",
            "studio.methods.lora",
            can_merge=True,
            quantized_base=True,
        ),
    )
}


def get_method(name: str) -> MethodSpec:
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method '{name}'; known: {', '.join(METHODS)}") from None


@dataclass(frozen=True)
class MethodContext:
    """What a method may need beyond the model: tokenizer, device plan, training type."""

    tokenizer: Any
    plan: Any  # studio.models.loading.DevicePlan
    training_type: str
    gradient_checkpointing: bool = False


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts, counting 4-bit packed weights at full size."""
    trainable = total = 0
    for parameter in model.parameters():
        count = parameter.numel()
        # bitsandbytes packs two 4-bit values per byte.
        if parameter.__class__.__name__ == "Params4bit":
            count *= 2
        total += count
        if parameter.requires_grad:
            trainable += count
    return trainable, total


def describe_trainable(model: Any) -> str:
    trainable, total = trainable_parameters(model)
    share = 100.0 * trainable / total if total else 0.0
    return f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {share:.4f}"


def save_trained(model: Any, settings: Any, folder: Path) -> None:
    """Write what the method trained into `folder`, with a note of which method it was."""
    spec = get_method(settings.name)
    folder.mkdir(parents=True, exist_ok=True)
    spec.implementation().save(model, folder, settings)
    (folder / METHOD_FILE).write_text(
        json.dumps({"method": settings.model_dump(mode="json")}, indent=2), encoding="utf-8"
    )


def read_method_settings(folder: Path) -> Any:
    """The method settings saved beside an adapter (defaults to LoRA for plain PEFT folders)."""
    from pydantic import TypeAdapter

    from studio.config_methods import MethodSettings

    note = folder / METHOD_FILE
    if note.exists():
        data = json.loads(note.read_text(encoding="utf-8"))["method"]
        return TypeAdapter(MethodSettings).validate_python(data)
    return METHOD_SETTINGS["lora"]()


def load_trained(base_model: Any, folder: Path) -> Any:
    settings = read_method_settings(folder)
    return get_method(settings.name).implementation().load(base_model, folder, settings)
