"""Full fine-tune: every weight trains. The result is a whole model saved with save_pretrained.

Its memory cost is the reason the other methods exist: besides the weights, the optimizer
keeps gradients and (AdamW) two moments for every parameter. `apply` logs that cost, computed
with `studio.methods.memory`, before the first step.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.config import FullSettings
from studio.methods.memory_plan import MemoryPlan

if TYPE_CHECKING:
    from studio.models.shape import ModelShape

SETTINGS = (FullSettings,)


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
    from studio.formatting import format_bytes
    from studio.methods.memory import optimizer_state_bytes

    parameters = sum(p.numel() for p in model.parameters())
    bytes_per = next(model.parameters()).element_size()
    optimizer = getattr(context.training, "optimizer", "adamw_torch")
    weights = parameters * bytes_per
    gradients = parameters * bytes_per
    state = optimizer_state_bytes(optimizer, parameters, bytes_per)

    def size(count: int) -> str:
        return format_bytes(count, decimals=1)

    return (
        f"full fine-tune trains all {parameters:,} parameters: {size(weights)} of "
        f"weights + {size(gradients)} of gradients + {size(state)} of "
        f"{optimizer} state = {size(weights + gradients + state)} before activations. "
        "LoRA and QLoRA keep gradients and optimizer state for their adapters only (usually "
        "under 1% of the parameters); use them if memory runs short."
    )


def save(model: Any, folder: Path, settings: FullSettings) -> None:
    model.save_pretrained(str(folder))
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None:
        generation_config.save_pretrained(str(folder))


def load_weights(model: Any, folder: Path) -> None:
    """Put the weights of a save_pretrained folder (a full or freeze run's result or Trainer
    checkpoint) into `model`, every tensor of it, through transformers' own loading.

    `save_pretrained` writes a model in its published layout, which transformers 5 renames on
    loading (GPT-NeoX's `embed_out` is `lm_head` in memory, a mixture-of-experts' per-expert
    matrices become one fused tensor). Reading the safetensors straight into `load_state_dict`
    would skip that; `from_pretrained` applies it, and its loading report says whether any
    tensor of the model was left out, which fails here instead of keeping base weights.
    """
    folder = Path(folder)
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise FileNotFoundError(f"no model weights (*.safetensors) in {folder}")
    dtype = next(model.parameters()).dtype
    # The model's own class: the same renames, also for models with custom code.
    loaded, report = type(model).from_pretrained(str(folder), dtype=dtype, output_loading_info=True)
    problems = [
        f"{what}: {', '.join(sorted(names)[:5])}"
        for what, names in (
            ("missing", report.get("missing_keys", ())),
            ("unexpected", report.get("unexpected_keys", ())),
            ("wrong shape", [str(item[0]) for item in report.get("mismatched_keys", ())]),
        )
        if names
    ]
    if problems:
        raise ValueError(f"{folder} does not hold this model's weights ({'; '.join(problems)})")
    state = loaded.state_dict()
    del loaded
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        names = [*result.missing_keys, *result.unexpected_keys]
        raise ValueError(
            f"{folder} holds a different model than the base (e.g. {', '.join(names[:5])})"
        )


def load(base_model: Any, folder: Path, settings: FullSettings, *, trainable: bool = False) -> Any:
    load_weights(base_model, Path(folder))
    base_model.requires_grad_(trainable)
    return base_model


def merge(model: Any) -> Any:
    return model


def memory_plan(
    shape: ModelShape, settings: FullSettings, *, activation_bytes: int, weight_bytes: int
) -> MemoryPlan:
    """Every base weight trains, in every layer."""
    layers = shape.num_layers
    return MemoryPlan(shape.num_parameters, 0, True, layers, layers)
