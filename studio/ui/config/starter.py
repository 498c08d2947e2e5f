"""The config the studio opens with, and how it follows a change of base model.

A first `s` on the Train screen should train something that works: the built-in tiny model,
the English alpaca sample, and the hyperparameters that make the tiny model learn it (those of
`sample_data/configs/quickstart.yaml`; a test keeps the two equal). Those settings would be
wrong for a real model (30 epochs at a learning rate of 3e-3 ruins a 7B model), so when the
user moves from the tiny model to another one without having touched them, the training and
method settings go back to the general defaults.
"""

from __future__ import annotations

from studio.config import RunConfig, TrainingSettings, method_defaults
from studio.models.tiny import TINY_MODEL_NAME

TINY_DEMO = {
    "model": {"source": TINY_MODEL_NAME},
    "method": {"name": "lora", "rank": 16, "alpha": 32, "dropout": 0.0},
    "training_type": "sft",
    "data": {"path": "sample_data/alpaca_en.jsonl", "max_length": 256},
    "training": {
        "epochs": 30,
        "learning_rate": 0.003,
        "scheduler": "cosine",
        "warmup_ratio": 0.03,
        "batch_size": 8,
        "logging_steps": 5,
        "seed": 42,
    },
    "output": {"runs_dir": "runs"},
}


def starter_config() -> RunConfig:
    return RunConfig.model_validate(TINY_DEMO)


GENERALISED = (
    "training and method settings are back to the general defaults "
    "(the tiny demo's 30 epochs at lr 3e-3 would ruin a real model)"
)
QUICKSTART = "training and method settings are the tiny demo's quickstart values again"


def with_base_model(config: RunConfig, source: str) -> tuple[RunConfig, str]:
    """`config` on another base model, and a note when settings the user had not touched were
    swapped on the way: the tiny model's quickstart values for the general defaults when
    leaving it, and back when returning to it ("" when nothing else changed)."""
    model = config.model.model_copy(update={"source": source})
    changed = config.model_copy(update={"model": model})
    starter = starter_config()
    was_tiny, is_tiny = config.model.source == TINY_MODEL_NAME, source == TINY_MODEL_NAME
    if was_tiny and not is_tiny:
        if config.training == starter.training and config.method == starter.method:
            general = changed.model_copy(
                update={
                    "training": TrainingSettings(),
                    "method": method_defaults(config.method.name),
                }
            )
            return general, GENERALISED
    elif is_tiny and not was_tiny:
        general_method = method_defaults(config.method.name)
        if config.training == TrainingSettings() and config.method == general_method:
            update: dict[str, object] = {"training": starter.training}
            if config.method.name == starter.method.name:
                update["method"] = starter.method
            return changed.model_copy(update=update), QUICKSTART
    return changed, ""
