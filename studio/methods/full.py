"""Full fine-tune: every weight trains. The result is a whole model saved with save_pretrained.

Its memory cost is the reason the other methods exist: besides the weights, the optimizer
keeps gradients and (AdamW) two moments for every parameter. `apply` logs that cost, computed
with `studio.methods.memory`, before the first step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.config_methods import FullSettings


def apply(model: Any, settings: FullSettings, context: Any = None) -> Any:
    from studio.methods.precision import upcast_trainable_to_float32

    model.requires_grad_(True)
    upcast_trainable_to_float32(model)  # float32 master weights (see methods/precision.py)
    if context is not None:
        context.note(memory_warning(model, context), "warning")
        if context.gradient_checkpointing:
            model.enable_input_require_grads()
    return model


def memory_warning(model: Any, context: Any) -> str:
    from studio.methods.memory import human_bytes, optimizer_state_bytes

    parameters = sum(p.numel() for p in model.parameters())
    bytes_per = next(model.parameters()).element_size()
    optimizer = getattr(context.training, "optimizer", "adamw_torch")
    weights = parameters * bytes_per
    gradients = parameters * bytes_per
    state = optimizer_state_bytes(optimizer, parameters, bytes_per)
    return (
        f"full fine-tune trains all {parameters:,} parameters: {human_bytes(weights)} of "
        f"weights + {human_bytes(gradients)} of gradients + {human_bytes(state)} of "
        f"{optimizer} state = {human_bytes(weights + gradients + state)} before activations. "
        "LoRA and QLoRA keep gradients and optimizer state for their adapters only (usually "
        "under 1% of the parameters); use them if memory runs short."
    )


def save(model: Any, folder: Path, settings: FullSettings) -> None:
    model.save_pretrained(str(folder))
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None:
        generation_config.save_pretrained(str(folder))


def load_weights(model: Any, folder: Path) -> None:
    """Load every `*.safetensors` file in `folder` (a save_pretrained folder) into `model`."""
    from safetensors.torch import load_file

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors weights in {folder}")
    loaded: set[str] = set()
    for file in files:
        tensors = load_file(str(file))
        result = model.load_state_dict(tensors, strict=False)
        if result.unexpected_keys:
            raise ValueError(
                f"{file.name} holds tensors the base model lacks: "
                f"{', '.join(result.unexpected_keys[:5])}"
            )
        loaded.update(tensors)
    # A tied weight (lm_head sharing the embeddings) is saved once under one of its names.
    loaded_storage = {
        parameter.data_ptr() for name, parameter in model.named_parameters() if name in loaded
    }
    missing = [
        name
        for name, parameter in model.named_parameters(remove_duplicate=False)
        if name not in loaded and parameter.data_ptr() not in loaded_storage
    ]
    if missing:
        raise ValueError(f"{folder} lacks weights for: {', '.join(missing[:5])}")


def load(base_model: Any, folder: Path, settings: FullSettings, *, trainable: bool = False) -> Any:
    load_weights(base_model, Path(folder))
    base_model.requires_grad_(trainable)
    return base_model


def merge(model: Any) -> Any:
    return model
