"""The one interface every method module provides, and the check the registry makes of it.

A method module (`studio/methods/lora.py`, `freeze.py`, ...) is the unit of a fine-tuning
method, as a tuner package is in peft: its settings, the model surgery, save / load / merge,
and what it trains and keeps in memory. The registry (`studio.methods.registry`) imports a
module the first time a method is used and refuses one that lacks a member, naming it.

Besides the members below a module may define `quantization_config(settings, plan)`, the
transformers quantization config its base model loads with (QLoRA), or None.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from studio.methods.memory_plan import MemoryPlan
    from studio.models.shape import ModelShape


class TrainingMethod(Protocol):
    """What a method module provides; one module may serve several methods (LoRA and QLoRA,
    prompt and P-tuning), told apart by the settings they are called with."""

    #: The settings classes (`studio.config.methods`) this module takes.
    SETTINGS: tuple[type, ...]

    def apply(self, model: Any, settings: Any, context: Any = None) -> Any:
        """The model ready to train (context: `studio.methods.registry.MethodContext`)."""
        ...

    def save(self, model: Any, folder: Path, settings: Any) -> None:
        """Write what was trained into `folder`."""
        ...

    def load(self, base_model: Any, folder: Path, settings: Any, *, trainable: bool = False) -> Any:
        """Put a saved result (or a Trainer checkpoint) back on a fresh base model, for chat
        (trainable=False) or more training."""
        ...

    def merge(self, model: Any) -> Any:
        """A plain transformers model (where the method can merge or is a whole model)."""
        ...

    def memory_plan(
        self, shape: ModelShape, settings: Any, *, activation_bytes: int, weight_bytes: int
    ) -> MemoryPlan:
        """What the method trains on a model of this shape, and what it keeps for backward:
        trainable and added parameters, layers with gradients, extra activations.
        `activation_bytes` per element of activations (2 in bf16 / fp16, 4 in fp32);
        `weight_bytes` per base weight as loaded."""
        ...


def protocol_members() -> tuple[str, ...]:
    """The names a method module must define, read from `TrainingMethod` itself."""
    names = set(TrainingMethod.__annotations__)
    names.update(
        name
        for name, value in vars(TrainingMethod).items()
        if callable(value) and not name.startswith("_")
    )
    return tuple(sorted(names))


def missing_members(implementation: object) -> list[str]:
    """The protocol members `implementation` lacks (a function that is not callable too)."""
    missing = []
    for name in protocol_members():
        value = getattr(implementation, name, None)
        wanted_callable = name != "SETTINGS"
        if value is None or (wanted_callable and not callable(value)):
            missing.append(name)
    return missing


def check_method(implementation: object, method: str, settings_class: type) -> None:
    """Refuse a method module that does not provide `TrainingMethod` for `method`, saying what
    is missing. A programming error, not a user's: a TypeError for the developer."""
    where = getattr(implementation, "__name__", repr(implementation))
    missing = missing_members(implementation)
    if missing:
        raise TypeError(
            f"method '{method}': {where} does not provide the TrainingMethod protocol "
            f"(studio.methods.protocol): missing {', '.join(missing)}"
        )
    settings = getattr(implementation, "SETTINGS", None)
    if not isinstance(settings, tuple) or settings_class not in settings:
        raise TypeError(
            f"method '{method}': {where}.SETTINGS does not list {settings_class.__name__}, "
            "the settings class the method is configured with"
        )
