"""Turn any failure of a run into a kind, a message and concrete advice."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from studio.config import RunConfig
from studio.errors import ConfigError, DataError, ModelError, StudioError


@dataclass(frozen=True)
class Failure:
    kind: str
    message: str
    advice: tuple[str, ...] = ()


def is_out_of_memory(error: BaseException) -> bool:
    name = type(error).__name__
    text = str(error).lower()
    return (
        name == "OutOfMemoryError"
        or "out of memory" in text
        or "can't allocate memory" in text
        or isinstance(error, MemoryError)
    )


@dataclass(frozen=True)
class MemoryChoice:
    """One change that lowers memory, as config overrides (dotted keys) a relaunch applies.

    `carry` says what a relaunch from the last checkpoint keeps: "everything" (weights,
    optimizer state, schedule, data order), "weights" (the optimizer changes, so its state
    starts fresh) or "nothing" (the trained weights do not fit the new setup: start over).
    """

    key: str
    title: str
    advice: str
    overrides: dict[str, Any] = field(default_factory=dict)
    carry: str = "everything"


def out_of_memory_choices(config: RunConfig) -> tuple[MemoryChoice, ...]:
    """The concrete changes that lower memory, most effective first, skipping what is on."""
    training = config.training
    choices = []
    if config.method.name in ("lora", "full", "freeze"):
        method = {"name": "qlora"}
        if config.method.name == "lora":
            method = {**config.method.model_dump(mode="json"), "name": "qlora"}
        choices.append(
            MemoryChoice(
                "qlora",
                "QLoRA: load the base model in 4 bits",
                "use QLoRA (method.name: qlora) to load the base model in 4 bits",
                {"method": method},
                "weights" if config.method.name == "lora" else "nothing",
            )
        )
    if training.batch_size > 1:
        half = max(training.batch_size // 2, 1)
        accumulation = training.gradient_accumulation * (training.batch_size // half)
        choices.append(
            MemoryChoice(
                "smaller_batch",
                f"batch {half} x {accumulation} accumulation (same effective batch)",
                f"halve the batch: training.batch_size: {half} with "
                f"training.gradient_accumulation: {accumulation} keeps the effective batch",
                {"training.batch_size": half, "training.gradient_accumulation": accumulation},
            )
        )
    if not training.gradient_checkpointing:
        choices.append(
            MemoryChoice(
                "gradient_checkpointing",
                "gradient checkpointing (about 30% slower)",
                "turn on training.gradient_checkpointing: true (about 30% slower)",
                {"training.gradient_checkpointing": True},
            )
        )
    if config.data.max_length > 256:
        shorter = config.data.max_length // 2
        choices.append(
            MemoryChoice(
                "shorter_sequences",
                f"sequences of at most {shorter} tokens",
                f"shorten sequences: data.max_length: {shorter}",
                {"data.max_length": shorter},
            )
        )
    if not training.optimizer.startswith("paged_"):
        choices.append(
            MemoryChoice(
                "paged_optimizer",
                "paged 8-bit optimizer (state spills to host memory)",
                "use a paged optimizer: training.optimizer: paged_adamw_8bit",
                {"training.optimizer": "paged_adamw_8bit"},
                "weights",
            )
        )
    return tuple(choices)


def out_of_memory_advice(config: RunConfig) -> tuple[str, ...]:
    """The concrete changes that lower memory, most effective first, skipping what is on."""
    return tuple(choice.advice for choice in out_of_memory_choices(config))


def classify_failure(error: BaseException, config: RunConfig) -> Failure:
    if isinstance(error, StudioError):
        kind = {ConfigError: "config", DataError: "data", ModelError: "model"}.get(
            type(error), "input"
        )
        advice = (error.advice,) if error.advice else ()
        message = f"{error.location}: {error.message}" if error.location else error.message
        return Failure(kind, message, advice)
    if is_out_of_memory(error):
        return Failure(
            "out_of_memory",
            f"out of memory: {str(error).splitlines()[0] if str(error) else type(error).__name__}",
            out_of_memory_advice(config),
        )
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return Failure(
        "internal",
        f"{type(error).__name__}: {first_line}".rstrip(": "),
        ("the full traceback is in the run's log.txt",),
    )
