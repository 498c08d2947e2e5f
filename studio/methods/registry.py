"""One registry of fine-tuning methods that the config, the TUI and the CLI read from.

Each method family lives in its own module (they import torch and peft inside their functions,
so the registry and the memory estimate stay light). A family module provides the
`TrainingMethod` protocol (`studio.methods.protocol`):

    SETTINGS: tuple of the settings classes it takes
    apply(model, settings, context) -> model ready to train
    save(model, folder, settings) -> None            writes what was trained into `folder`
    load(base_model, folder, settings, *, trainable=False) -> model
                                                     puts it back on a fresh base model, for
                                                     chat (trainable=False) or more training
    merge(model) -> plain transformers model          (when can_merge or whole_model)
    memory_plan(shape, settings, *, activation_bytes, weight_bytes) -> MemoryPlan
                                                     what it trains and keeps in memory
    quantization_config(settings, plan) -> transformers quantization config or None  (optional)

`MethodSpec.implementation()` imports the module and refuses it, naming what is missing, when
it does not provide the protocol. `load` must also accept a Trainer checkpoint folder where it
can (chat opens checkpoints through the family module with the run's settings).
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel

from studio.config import METHOD_SETTINGS, METHOD_TRAINING_TYPES
from studio.errors import ConfigError, ModelError
from studio.methods.protocol import TrainingMethod, check_method

METHOD_FILE = "ftstudio_method.json"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    title: str
    summary: str
    module: str
    #: The trained part folds into the base weights: `merge` gives a plain transformers model.
    can_merge: bool
    #: The base is loaded in 4 bits (QLoRA).
    quantized_base: bool = False
    #: The method rewrites the model's own weights (full, freeze): the result is a whole model,
    #: exported as is, and there is no adapter to switch off for a base comparison.
    whole_model: bool = False
    #: A warning worth showing before the run starts (full fine-tune's memory cost).
    warning: str | None = None
    #: False where `training.gradient_checkpointing: true` is refused (prefix tuning).
    supports_gradient_checkpointing: bool = True

    @property
    def settings_model(self) -> type[BaseModel]:
        return METHOD_SETTINGS[self.name]

    @property
    def description(self) -> str:
        return (self.settings_model.__doc__ or self.summary).strip()

    @property
    def training_types(self) -> tuple[str, ...]:
        return METHOD_TRAINING_TYPES[self.name]

    @property
    def parameters(self) -> dict[str, Any]:
        """The method's settings (pydantic FieldInfo by name): default, bounds, description."""
        return {
            name: field
            for name, field in self.settings_model.model_fields.items()
            if name != "name"
        }

    @property
    def can_export(self) -> bool:
        """A standalone model can be written: merged adapter or the trained whole model."""
        return self.can_merge or self.whole_model

    def implementation(self) -> TrainingMethod:
        """The method's module, checked against the `TrainingMethod` protocol."""
        module = importlib.import_module(self.module)
        check_method(module, self.name, self.settings_model)
        return cast(TrainingMethod, module)


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec(
            "freeze",
            "Freeze",
            "Train only the last layers or named parameters",
            "studio.methods.freeze",
            can_merge=False,
            whole_model=True,
        ),
        MethodSpec(
            "prompt_tuning",
            "Prompt tuning",
            "Learned virtual token embeddings at the input",
            "studio.methods.prompt",
            can_merge=False,
        ),
        MethodSpec(
            "p_tuning",
            "P-tuning",
            "Virtual tokens from a small prompt encoder (MLP or LSTM)",
            "studio.methods.prompt",
            can_merge=False,
        ),
        MethodSpec(
            "prefix_tuning",
            "Prefix tuning (P-tuning v2)",
            "Learned key/value prefixes at every layer",
            "studio.methods.prefix",
            can_merge=False,
            supports_gradient_checkpointing=False,
        ),
        MethodSpec(
            "bottleneck",
            "Bottleneck adapter",
            "Small down/up projections after or beside attention and MLP",
            "studio.methods.bottleneck",
            can_merge=False,
        ),
        MethodSpec("lora", "LoRA", "Low-rank adapters", "studio.methods.lora", can_merge=True),
        MethodSpec(
            "qlora",
            "QLoRA",
            "LoRA on a 4-bit base",
            "studio.methods.lora",
            can_merge=True,
            quantized_base=True,
        ),
        MethodSpec("ia3", "IA3", "Learned rescaling vectors", "studio.methods.ia3", can_merge=True),
        MethodSpec(
            "full",
            "Full fine-tune",
            "Every weight trained",
            "studio.methods.full",
            can_merge=False,
            whole_model=True,
            warning="Full fine-tuning keeps gradients and optimizer state for every weight: "
            "about 4x the model's size in memory before activations (16 bytes per parameter "
            "with fp32 AdamW). LoRA or QLoRA need a fraction of that.",
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
    """What a method may need beyond the model: tokenizer, device plan, training type, a log."""

    tokenizer: Any = None
    plan: Any = None  # studio.models.loading.DevicePlan
    training_type: str = "sft"
    gradient_checkpointing: bool = False
    #: The run's TrainingSettings (optimizer, batch size...), when a run applies the method.
    training: Any = None
    #: Where notes and warnings go: the run's log (`session.log(text, level)`) in a run.
    log: Callable[..., None] | None = None

    def note(self, text: str, level: str = "info") -> None:
        if self.log is not None:
            self.log(text, level)
        else:
            logger.log(logging.WARNING if level == "warning" else logging.INFO, text)


def parameter_count(parameter: Any) -> int:
    """Elements of a parameter as the model sees them: a packed 4-bit weight at full size."""
    quant_state = getattr(parameter, "quant_state", None)
    if quant_state is not None and getattr(quant_state, "shape", None) is not None:
        count = 1
        for size in quant_state.shape:
            count *= int(size)
        return count
    if parameter.__class__.__name__ == "Params4bit":
        # Not quantized yet: bitsandbytes packs two 4-bit values per byte once it is.
        return int(parameter.numel()) * (2 if parameter.dtype.itemsize == 1 else 1)
    return int(parameter.numel())


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts, counting 4-bit packed weights at full size.

    Tied weights (one tensor under two names) count once, as `model.parameters()` yields them.
    """
    trainable = total = 0
    for parameter in model.parameters():
        count = parameter_count(parameter)
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
    from pydantic import TypeAdapter, ValidationError

    from studio.config import MethodSettings
    from studio.run_files import read_json_object

    note = folder / METHOD_FILE
    if note.exists():
        # Read without trusting it: a damaged note is a ModelError naming it, not a traceback.
        read = read_json_object(note)
        data = read.data.get("method")
        problem = read.problem or (None if isinstance(data, dict) else "it has no method object")
        if problem is None:
            try:
                return TypeAdapter(MethodSettings).validate_python(data)
            except ValidationError as error:
                problem = f"its method settings are invalid ({error.errors()[0]['msg']})"
        raise ModelError(
            f"cannot read the method note {note}: {problem}",
            advice="the trained folder is damaged; export or chat from a checkpoint of the "
            "run, or train it again",
        )
    return METHOD_SETTINGS["lora"]()


def load_trained(base_model: Any, folder: Path, *, trainable: bool = False) -> Any:
    """Put a saved result back on a freshly loaded base model.

    `trainable=False` gives a model for chat; `trainable=True` one whose trained part has
    `requires_grad` again, to train further.
    """
    folder = Path(folder)
    settings = read_method_settings(folder)
    implementation = get_method(settings.name).implementation()
    return implementation.load(base_model, folder, settings, trainable=trainable)


def merge_trained(model: Any, settings: Any) -> Any:
    """A plain transformers model with the trained method folded in, for `save_pretrained`.

    LoRA, QLoRA (dequantized first) and IA3 merge into the base weights; full and freeze
    already are a whole model. Virtual-token methods and bottleneck adapters add computation
    that no weight of the base model can hold, so they cannot be merged.
    """
    spec = get_method(settings.name)
    if not spec.can_export:
        raise ConfigError(
            f"{spec.title} cannot be merged into the base model: it adds computation the "
            "base weights cannot hold",
            advice="export the adapter folder and load it with ftstudio (or peft) on the "
            "base model instead",
        )
    return spec.implementation().merge(model)
