"""Prefix tuning (P-tuning v2) through peft: learned key/value vectors at every layer.

Each attention layer sees `num_virtual_tokens` extra key/value positions before the real
tokens. peft feeds them in as a pre-filled KV cache (`past_key_values`) and widens the
attention mask by the same number of positions. With `projection`, the prefixes come out of
a two-layer MLP (the reparameterisation of the P-tuning v2 paper) while training; only its
output is needed for inference.

What was wrong ("attention mask size mismatch" in training with peft 0.21, transformers 5,
trl 1.16)
---------------------------------------------------------------------------------------------
Not the mask arithmetic itself: a plain forward and backward of a PrefixTuning Llama works.
It fails only with gradient checkpointing on, for example:

    RuntimeError: The size of tensor a (12) must match the size of tensor b (20) at
    non-singleton dimension 3

The chain:

1. trl's `SFTConfig` turns `gradient_checkpointing` on by default (the engine's own config
   can too), and the Trainer enables it on the model *after* `get_peft_model` ran. peft's
   guard ("PREFIX_TUNING does not work with gradient checkpointing", raised in
   `_setup_prompt_encoder`) only looks at the model when the adapter is created, so it never
   fires.
2. peft extends the 2-D attention mask to `num_virtual_tokens + seq_len` columns and passes the
   prefix as `past_key_values`; Llama builds its 4-D causal mask over those
   `num_virtual_tokens + seq_len` key positions.
3. In transformers 5, every decoder layer is a `GradientCheckpointingLayer` whose wrapper,
   when checkpointing in training mode, sets `past_key_values=None` (a cache cannot be
   written inside a recomputed block). The layer then attends over `seq_len` keys only, with
   a mask built for `num_virtual_tokens + seq_len`: the mismatch, 12 vs 20 above with 8
   virtual tokens.

So prefix tuning and gradient checkpointing cannot be combined with these libraries (the
prefix travels through the very cache that checkpointing drops; even if it were kept, the
recomputation would append the layer's keys to the cache a second time). The fix here:

- `apply` refuses `training.gradient_checkpointing: true` up front with a `ConfigError` that
  says why, instead of a shape error mid-step;
- the PEFT model it returns (`PrefixTuningModel`) turns a *later* request to enable
  checkpointing (the Trainer's, from a default such as trl's) into a logged no-op, so
  training goes on without it.

The memory cost of going without is modest for this method: the frozen base's activations are
kept, but there are no gradients or optimizer state for base weights.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.config import PrefixTuningSettings
from studio.errors import ConfigError
from studio.methods import prompt
from studio.methods.memory_plan import MemoryPlan

if TYPE_CHECKING:
    from studio.models.shape import ModelShape

SETTINGS = (PrefixTuningSettings,)

GRADIENT_CHECKPOINTING_ADVICE = (
    "set training.gradient_checkpointing: false (prefix tuning passes its prefixes through "
    "the KV cache, which gradient checkpointing drops), or use prompt tuning / LoRA"
)


def peft_config(settings: PrefixTuningSettings) -> Any:
    from peft import PrefixTuningConfig, TaskType

    return PrefixTuningConfig(
        task_type=TaskType.CAUSAL_LM,
        num_virtual_tokens=settings.num_virtual_tokens,
        prefix_projection=settings.projection,
        encoder_hidden_size=settings.encoder_hidden_size,
    )


def check_gradient_checkpointing(model: Any, context: Any) -> None:
    wanted = bool(getattr(context, "gradient_checkpointing", False))
    enabled = any(getattr(module, "gradient_checkpointing", False) for module in model.modules())
    if wanted or enabled:
        raise ConfigError(
            "prefix tuning does not work with gradient checkpointing",
            advice=GRADIENT_CHECKPOINTING_ADVICE,
        )


_MODEL_CLASS: type | None = None


def model_class() -> type:
    """`PrefixTuningModel`: the prompt-learning model that keeps checkpointing off."""
    global _MODEL_CLASS
    if _MODEL_CLASS is not None:
        return _MODEL_CLASS

    class PrefixTuningModel(prompt.model_class()):  # type: ignore[misc]
        """A later request to enable checkpointing (the Trainer's) is a logged no-op."""

        def activation_checkpointing_enable(self, *args: Any, **kwargs: Any) -> None:
            message = "gradient checkpointing stays off: prefix tuning cannot use it"
            note = self.__dict__.get("ftstudio_note")
            if note is not None:
                note(message, "warning")
            else:
                logging.getLogger(__name__).warning(message)

        gradient_checkpointing_enable = activation_checkpointing_enable

    _MODEL_CLASS = PrefixTuningModel
    return PrefixTuningModel


def apply(model: Any, settings: PrefixTuningSettings, context: Any = None) -> Any:
    from peft import get_peft_model

    check_gradient_checkpointing(model, context)
    peft_model = get_peft_model(model, peft_config(settings))
    prompt.as_prompt_learning_model(peft_model, model_class())
    if context is not None:
        peft_model.ftstudio_note = context.note
    return peft_model


def save(model: Any, folder: Path, settings: PrefixTuningSettings) -> None:
    prompt.save(model, folder, settings)


def load(
    base_model: Any, folder: Path, settings: PrefixTuningSettings, *, trainable: bool = False
) -> Any:
    return prompt.load(base_model, folder, settings, trainable=trainable, model_cls=model_class())


def merge(model: Any) -> Any:
    raise ConfigError("prefix tuning cannot be merged into the base weights")


def memory_plan(
    shape: ModelShape, settings: PrefixTuningSettings, *, activation_bytes: int, weight_bytes: int
) -> MemoryPlan:
    """Key / value prefixes at every layer (through a projection MLP when `projection`)."""
    tokens, kv, layers = settings.num_virtual_tokens, shape.kv_size, shape.num_layers
    if settings.projection:
        hidden = settings.encoder_hidden_size
        trainable = tokens * kv + kv * hidden + hidden + hidden * 2 * layers * kv + 2 * layers * kv
    else:
        trainable = tokens * 2 * layers * kv
    return MemoryPlan(trainable, trainable, layers_with_grad=layers)
