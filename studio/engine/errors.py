"""Turn any failure of a run into a kind, a message and concrete advice."""

from __future__ import annotations

from dataclasses import dataclass

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


def out_of_memory_advice(config: RunConfig) -> tuple[str, ...]:
    """The concrete changes that lower memory, most effective first, skipping what is on."""
    training = config.training
    advice = []
    if config.method.name in ("lora", "full", "freeze"):
        advice.append("use QLoRA (method.name: qlora) to load the base model in 4 bits")
    if training.batch_size > 1:
        half = max(training.batch_size // 2, 1)
        accumulation = training.gradient_accumulation * (training.batch_size // half)
        advice.append(
            f"halve the batch: training.batch_size: {half} with "
            f"training.gradient_accumulation: {accumulation} keeps the effective batch"
        )
    if not training.gradient_checkpointing:
        advice.append("turn on training.gradient_checkpointing: true (about 30% slower)")
    if config.data.max_length > 256:
        advice.append(f"shorten sequences: data.max_length: {config.data.max_length // 2}")
    if not training.optimizer.startswith("paged_"):
        advice.append("use a paged optimizer: training.optimizer: paged_adamw_8bit")
    return tuple(advice)


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
