"""IA3 through peft: learned vectors that rescale keys, values and feed-forward activations.

The fewest trainable parameters of any method here (one number per channel of each target).
For attention targets the vector scales the layer's output; for feed-forward targets
(`feedforward_modules`) it scales the input. Merging multiplies the vectors into the weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.config import IA3Settings
from studio.errors import ConfigError
from studio.methods.memory_plan import MemoryPlan, matches_target, targeted_linears

if TYPE_CHECKING:
    from studio.models.shape import ModelShape

SETTINGS = (IA3Settings,)

# Names of the second (down) projection of the feed-forward block in common architectures.
FEEDFORWARD_LAYER_NAMES = ("down_proj", "fc2", "w2", "dense_4h_to_h", "c_proj", "fc_out")


def peft_config(settings: IA3Settings, model: Any = None) -> Any:
    """peft's IA3Config; with `model`, the targets are checked against (or, where peft has no
    default for the architecture, found in) that model."""
    from peft import IA3Config, TaskType
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING

    from studio.methods.targets import check_names, ia3_default_targets

    targets = settings.target_modules
    feedforward = settings.feedforward_modules
    if model is not None and targets:
        check_names(model, list(targets), "target_modules", experts_too=False)
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if (
        model is not None
        and not targets
        and model_type not in TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING
    ):
        # Phi-3, mixtures of experts...: peft would ask for target_modules.
        targets, found_feedforward = ia3_default_targets(model)
        feedforward = feedforward or found_feedforward
    if targets and feedforward is None:
        # peft would fall back to the model's default feed-forward names, which need not be
        # among the chosen targets; pick the feed-forward layers out of the targets instead.
        feedforward = [
            name
            for name in targets
            if name.split(".")[-1] in FEEDFORWARD_LAYER_NAMES and not name.startswith("attn.")
        ]
    if targets and feedforward and not set(feedforward) <= set(targets):
        raise ConfigError(
            "method.feedforward_modules must be a subset of method.target_modules",
            advice=f"add {sorted(set(feedforward) - set(targets))} to target_modules",
        )
    return IA3Config(
        task_type=TaskType.CAUSAL_LM,
        target_modules=targets,
        feedforward_modules=feedforward,
    )


def apply(model: Any, settings: IA3Settings, context: Any = None) -> Any:
    from peft import get_peft_model

    from studio.methods.targets import fused_experts

    config = peft_config(settings, model)
    if fused_experts(model) and context is not None:
        context.note(
            "IA3 rescales layers only: this model's fused expert tensors stay as they are "
            "(peft's IA3 cannot wrap them); use LoRA to adapt the experts",
            "warning",
        )
    try:
        return get_peft_model(model, config)
    except ValueError as error:
        from studio.methods.targets import layer_names

        raise ConfigError(
            f"IA3 cannot be applied: {error}",
            advice="set method.target_modules (and feedforward_modules) to names of this "
            f"model's linear layers: {', '.join(layer_names(model))}",
        ) from None


def save(model: Any, folder: Path, settings: IA3Settings) -> None:
    model.save_pretrained(str(folder))


def load(base_model: Any, folder: Path, settings: IA3Settings, *, trainable: bool = False) -> Any:
    from peft import PeftModel

    return PeftModel.from_pretrained(base_model, str(folder), is_trainable=trainable)


def merge(model: Any) -> Any:
    return model.merge_and_unload()


# ------------------------------------------------------------------ memory

# IA3's default layers where peft has one (its TRANSFORMERS_MODELS_TO_IA3_* tables):
# (targets, feed-forward targets); other architectures by role, as `methods.targets` finds them.
IA3_DEFAULTS = {
    "llama": (("k_proj", "v_proj", "down_proj"), ("down_proj",)),
    "mistral": (("k_proj", "v_proj", "down_proj"), ("down_proj",)),
    "gemma": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
    "gemma2": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
    "gemma3_text": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
    "qwen2": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
    "qwen3": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
    "gpt2": (("c_attn", "mlp.c_proj"), ("mlp.c_proj",)),
    "gpt_neox": (("query_key_value", "dense_4h_to_h"), ("dense_4h_to_h",)),
}


def _memory_targets(
    shape: ModelShape, settings: IA3Settings
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    targets = tuple(settings.target_modules or ())
    feedforward = tuple(settings.feedforward_modules or ())
    if not targets:
        default = IA3_DEFAULTS.get(shape.model_type)
        if default is None:
            names = [name for name, _, _ in shape.layer_linears()]
            fused = next((n for n in names if n.endswith(("qkv_proj", "query_key_value"))), "")
            key_value = (fused.split(".")[-1],) if fused else ("k_proj", "v_proj")
            default = ((*key_value, "down_proj"), ("down_proj",))
        targets = default[0]
        feedforward = feedforward or default[1]
    if not feedforward:
        feedforward = tuple(
            name
            for name in targets
            if name.split(".")[-1] in FEEDFORWARD_LAYER_NAMES and not name.startswith("attn.")
        )
    return targets, feedforward


def memory_plan(
    shape: ModelShape, settings: IA3Settings, *, activation_bytes: int, weight_bytes: int
) -> MemoryPlan:
    """One vector per targeted layer: its output's width, or its input's for feed-forward
    targets; each keeps the activation it rescales."""
    names, feedforward = _memory_targets(shape, settings)
    modules = targeted_linears(shape, list(names), names)
    sizes = [
        fan_in if any(matches_target(module, name) for name in feedforward) else fan_out
        for module, fan_in, fan_out in modules
    ]
    layers = shape.num_layers
    trainable = layers * sum(sizes)
    return MemoryPlan(
        trainable,
        trainable,
        layers_with_grad=layers,
        per_token_layer=activation_bytes * sum(sizes),
    )
