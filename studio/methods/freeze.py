"""Freeze tuning: train the last N decoder layers and parameters matching name patterns.

The model stays a plain transformers model with most weights frozen. What is saved is only
the trained tensors (`freeze_weights.safetensors`), so a run's folder stays small; `load`
writes them over a fresh copy of the base model. The result is a whole model: `merge` gives it
back as is, ready for `save_pretrained`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.config import FreezeSettings
from studio.errors import ConfigError
from studio.methods.memory_plan import MemoryPlan
from studio.methods.model_parts import decoder_layers

if TYPE_CHECKING:
    from studio.models.shape import ModelShape

SETTINGS = (FreezeSettings,)

WEIGHTS_FILE = "freeze_weights.safetensors"


def trainable_names(model: Any, settings: FreezeSettings) -> list[str]:
    """Names of the parameters this freeze setting trains, in the model's order."""
    layers_name, layers = decoder_layers(model)
    count = min(settings.trainable_layers, len(layers))
    prefixes = tuple(f"{layers_name}.{index}." for index in range(len(layers) - count, len(layers)))
    patterns = tuple(settings.trainable_patterns)
    names = [
        name
        for name, _ in model.named_parameters()
        if (prefixes and name.startswith(prefixes)) or any(p in name for p in patterns)
    ]
    if not names:
        sample = ", ".join(name for name, _ in list(model.named_parameters())[:4])
        raise ConfigError(
            "freeze: no parameter is left to train",
            advice=f"raise method.trainable_layers (the model has {len(layers)} layers) or "
            f"give method.trainable_patterns that match parameter names such as {sample}",
        )
    return names


def apply(model: Any, settings: FreezeSettings, context: Any = None) -> Any:
    chosen = set(trainable_names(model, settings))
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in chosen)
    from studio.methods.precision import upcast_trainable_to_float32

    upcast_trainable_to_float32(model)  # float32 master weights (see methods/precision.py)
    if context is not None and context.gradient_checkpointing:
        # The embeddings are frozen, so checkpointed layers need an input that asks for grads.
        model.enable_input_require_grads()
    return model


def save(model: Any, folder: Path, settings: FreezeSettings) -> None:
    from safetensors.torch import save_file

    tensors = {
        name: parameter.detach().contiguous().cpu()
        for name, parameter in model.named_parameters()
        if parameter.requires_grad
    }
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})


def load(
    base_model: Any, folder: Path, settings: FreezeSettings, *, trainable: bool = False
) -> Any:
    from studio.methods.full import load_weights

    folder = Path(folder)
    if (folder / WEIGHTS_FILE).exists():
        from safetensors.torch import load_file

        tensors = load_file(str(folder / WEIGHTS_FILE))
        result = base_model.load_state_dict(tensors, strict=False)
        if result.unexpected_keys:
            raise ValueError(
                f"{WEIGHTS_FILE} holds tensors the base model lacks: "
                f"{', '.join(result.unexpected_keys[:5])}"
            )
    else:
        # A Trainer checkpoint of a freeze run holds the whole model.
        load_weights(base_model, folder)
    if trainable:
        return apply(base_model, settings)
    base_model.requires_grad_(False)
    return base_model


def merge(model: Any) -> Any:
    return model


def memory_plan(
    shape: ModelShape, settings: FreezeSettings, *, activation_bytes: int, weight_bytes: int
) -> MemoryPlan:
    """The chosen base weights train; gradients flow down to the lowest layer holding one."""
    layers = shape.num_layers
    first = layers - min(settings.trainable_layers, layers)
    prefixes = tuple(f"model.layers.{i}." for i in range(first, layers))
    trainable = 0
    lowest = layers
    for param, count in shape.parameter_names():
        chosen = (prefixes and param.startswith(prefixes)) or any(
            p in param for p in settings.trainable_patterns
        )
        if chosen:
            trainable += count
            if param.startswith("model.layers."):
                lowest = min(lowest, int(param.split(".")[2]))
            elif param.startswith("model.embed"):
                lowest = 0
    return MemoryPlan(trainable, 0, True, layers - lowest, layers - lowest)
