"""What a method states about its memory: the `MemoryPlan` each method module's `memory_plan`
returns, and the rule by which method settings name the linear layers they adapt.

The estimator (`studio.methods.memory`) turns a plan into bytes: weights, gradients, optimizer
state and activations. A plan holds counts and traits, not bytes, except for base weights a
method loads its own way (QLoRA's 4-bit layers). Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from studio.models.shape import ModelShape

# Every trained weight and every adapter weight is float32 (peft keeps adapters in fp32; full
# and freeze train float32 master weights: `studio.methods.precision`).
TRAINED_BYTES = 4


@dataclass(frozen=True)
class MemoryPlan:
    """What a method trains, as counts and the activation traits that follow from it."""

    trainable: int  # trainable parameters
    adapter: int = 0  # trainable parameters added beside the base (fp32), 0 for full / freeze
    trains_base: bool = False  # trainable parameters are base weights (full, freeze)
    layers_with_grad: int = 0  # decoder layers that autograd records (gradient flows into)
    weight_grad_layers: int = 0  # layers whose own weights train (keep their linear inputs)
    extra_tokens: int = 0  # virtual tokens in front of every sequence
    per_token_layer: float = 0.0  # extra activation bytes per token per layer (adapters)
    #: Bytes of the base model's weights when the method loads them its own way (QLoRA: 4-bit
    #: linear layers); None: every base parameter in the load dtype.
    base_weight_bytes: int | None = None
    notes: tuple[str, ...] = ()  # what the user should know about this estimate


def matches_target(layer: str, target: str) -> bool:
    """peft's rule: the layer's name is the target or ends in `.target`."""
    return layer == target or layer.endswith("." + target)


def targeted_linears(
    shape: ModelShape, targets: str | Sequence[str] | None, default: Sequence[str]
) -> list[tuple[str, int, int]]:
    """The linear layers of one decoder layer that `targets` names ("all-linear" or names;
    none: `default`), as (name, in_features, out_features)."""
    if targets == "all-linear":
        return shape.layer_linears()
    names = tuple(targets) if targets else tuple(default)
    return [
        item for item in shape.layer_linears() if any(matches_target(item[0], n) for n in names)
    ]
