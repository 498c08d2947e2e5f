"""Turn any failure of a run into a kind, a message and concrete advice."""

from __future__ import annotations

import errno
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.config import RunConfig
from studio.errors import ConfigError, DataError, ModelError, StudioError
from studio.formatting import MIB


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


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# How the libraries that write checkpoints word a full disk when they do not raise OSError:
# safetensors ("StorageFull", "No space left on device"). torch.save says only "file write
# failed" or "unexpected pos N vs M", so any failure with less than this free beside the run
# is taken for a full disk (measured: a 30 MB tmpfs with a tiny run, see the README's Safety).
_DISK_FULL_TEXT = ("no space left on device", "disk quota exceeded", "storagefull")
LOW_SPACE_BYTES = 64 * MIB


def _error_chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def is_disk_full(error: BaseException, folder: Path | None = None) -> bool:
    """A full disk (or quota), however the library that hit it words it."""
    for link in _error_chain(error):
        if isinstance(link, OSError) and link.errno in _DISK_FULL_ERRNOS:
            return True
        text = str(link).lower()
        if any(marker in text for marker in _DISK_FULL_TEXT):
            return True
    free = free_bytes(folder) if folder is not None else None
    return free is not None and free < LOW_SPACE_BYTES


def free_bytes(folder: Path) -> int | None:
    """Free space for this user on the filesystem that holds `folder` (or its nearest
    existing parent); None when it cannot be told."""
    for candidate in (folder, *folder.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def _disk_full_failure(error: BaseException, run_path: Path | None, runs_dir: Path) -> Failure:
    where = run_path.parent if run_path is not None else runs_dir
    free = free_bytes(where)
    room = f" ({free / MIB:.1f} MiB free)" if free is not None else ""
    place = f"the disk that holds {where}{room}"
    first = next((line for line in str(error).splitlines() if line.strip()), "")
    resume = f"ftstudio train --resume {run_path}" if run_path is not None else "resume the run"
    return Failure(
        "disk_full",
        f"{place} is full: {first or type(error).__name__}",
        (
            "free space on it, or point output.runs_dir at a bigger disk; then " + resume,
            "keep fewer checkpoints (training.save_total_limit) or save less often "
            "(training.save_steps)",
        ),
    )


def classify_failure(
    error: BaseException, config: RunConfig, *, run_path: Path | None = None
) -> Failure:
    """What went wrong, in words, with advice. `run_path` (the run folder, when it was made)
    tells a full disk or a removed folder apart from an internal error."""
    if run_path is not None and not (run_path / "config.yaml").is_file():
        return Failure(
            "run_folder_removed",
            f"the run folder {run_path} was removed while the run was training",
            ("start the run again; keep its folder until it has finished",),
        )
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
    if is_disk_full(error, run_path):
        return _disk_full_failure(error, run_path, Path(config.output.runs_dir).expanduser())
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return Failure(
        "internal",
        f"{type(error).__name__}: {first_line}".rstrip(": "),
        ("the full traceback is in the run's log.txt",),
    )
