"""IA3 through peft: learned vectors that rescale keys, values and feed-forward activations.

The fewest trainable parameters of any method here (one number per channel of each target).
For attention targets the vector scales the layer's output; for feed-forward targets
(`feedforward_modules`) it scales the input. Merging multiplies the vectors into the weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.config_methods import IA3Settings
from studio.errors import ConfigError

# Names of the second (down) projection of the feed-forward block in common architectures.
FEEDFORWARD_LAYER_NAMES = ("down_proj", "fc2", "w2", "dense_4h_to_h", "c_proj", "fc_out")


def peft_config(settings: IA3Settings) -> Any:
    from peft import IA3Config, TaskType

    targets = settings.target_modules
    feedforward = settings.feedforward_modules
    if targets and feedforward is None:
        # peft would fall back to the model's default feed-forward names, which need not be
        # among the chosen targets; pick the feed-forward layers out of the targets instead.
        feedforward = [name for name in targets if name in FEEDFORWARD_LAYER_NAMES]
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

    try:
        return get_peft_model(model, peft_config(settings))
    except ValueError as error:
        raise ConfigError(
            f"IA3 cannot be applied: {error}",
            advice="set method.target_modules (and feedforward_modules) to layer names of "
            "this model, e.g. [k_proj, v_proj, down_proj]",
        ) from None


def save(model: Any, folder: Path, settings: IA3Settings) -> None:
    model.save_pretrained(str(folder))


def load(base_model: Any, folder: Path, settings: IA3Settings, *, trainable: bool = False) -> Any:
    from peft import PeftModel

    return PeftModel.from_pretrained(base_model, str(folder), is_trainable=trainable)


def merge(model: Any) -> Any:
    return model.merge_and_unload()
