"""What to chat with: a run's adapter, one of its checkpoints, any adapter folder, or a base model.

Resolving a target reads only small files (config.yaml, status.json, adapter_config.json), never
weights and never torch, so the TUI can list and check targets instantly.

Checkpoints are listed by `studio.engine.checkpoints`: one is whole once the engine's
completion marker is in it; one without is still being written (or its save crashed) and is
refused with a pointer to the newest whole one. A checkpoint the run prunes while it loads
gives a clear error too (see `studio.chat.loading`). Whether a run is still training comes from
`studio.engine.liveness`, the same answer the Runs screen gives.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from studio.config import ModelSettings, load_config
from studio.engine.checkpoints import CHECKPOINT_NAME, Checkpoint, list_checkpoints
from studio.engine.liveness import ACTIVE_STATES, effective_state
from studio.errors import ConfigError, ModelError
from studio.methods.registry import METHOD_FILE
from studio.models.tiny import TINY_MODEL_NAME
from studio.run_files import read_json_object, str_field

if TYPE_CHECKING:
    from studio.config import MethodSettings, RunConfig

TargetKind = Literal["run", "checkpoint", "adapter", "base"]

PEFT_CONFIG_FILE = "adapter_config.json"


@dataclass(frozen=True)
class ChatTarget:
    """A base model and, unless `kind` is "base", the trained method folder to put on it."""

    kind: TargetKind
    model: ModelSettings
    adapter_dir: Path | None = None
    run_dir: Path | None = None
    # The run config's method settings; None means "read them from the adapter folder".
    method: MethodSettings | None = None
    step: int | None = None

    @property
    def has_adapter(self) -> bool:
        return self.adapter_dir is not None

    @property
    def label(self) -> str:
        """A short description for a title bar or a log line."""
        run = self.run_dir.name if self.run_dir else None
        if self.kind == "run":
            return f"{run} (final adapter)"
        if self.kind == "checkpoint":
            return f"{run} (checkpoint-{self.step})"
        if self.kind == "adapter":
            return f"adapter {self.adapter_dir}"
        return f"base model {self.model.source}" + (f" of {run}" if run else "")

    @property
    def run_is_training(self) -> bool:
        """True while the target's run is still training (in this or another process)."""
        return self.run_dir is not None and run_is_active(self.run_dir)

    def base_only(self) -> ChatTarget:
        """The same base model with no adapter."""
        return replace(self, kind="base", adapter_dir=None, method=None, step=None)

    def with_model_source(self, source: str) -> ChatTarget:
        """The same target on another base model (e.g. the base moved to another folder)."""
        return replace(self, model=self.model.model_copy(update={"source": source}))


def base_target(model: ModelSettings | str) -> ChatTarget:
    """Chat with a base model alone: 'tiny-demo', a model folder or a hub id."""
    settings = ModelSettings(source=model) if isinstance(model, str) else model
    return ChatTarget(kind="base", model=settings)


def run_target(
    run_dir: str | Path, checkpoint: int | str | None = None, *, base: bool = False
) -> ChatTarget:
    """A run's final adapter, with `checkpoint` (a step number or "latest") a checkpoint, or
    with `base` the run's base model alone (which works before any adapter exists).
    """
    run_dir = Path(run_dir).expanduser()
    config = _run_config(run_dir)
    if base:
        return ChatTarget(kind="base", model=config.model, run_dir=run_dir)
    if checkpoint is None:
        adapter = run_dir / "adapter"
        if not _is_trained_folder(adapter):
            raise ModelError(
                f"run {run_dir.name} has no adapter yet", advice=_no_adapter_advice(run_dir)
            )
        return ChatTarget(
            kind="run", model=config.model, adapter_dir=adapter, run_dir=run_dir,
            method=config.method,
        )  # fmt: skip
    info = _pick_checkpoint(run_dir, checkpoint)
    return ChatTarget(
        kind="checkpoint",
        model=config.model,
        adapter_dir=info.path,
        run_dir=run_dir,
        method=config.method,
        step=info.step,
    )


def resolve_target(
    path: str | Path,
    *,
    checkpoint: int | str | None = None,
    model_source: str | None = None,
    base: bool = False,
) -> ChatTarget:
    """Whatever the user pointed at: a run folder, its `adapter/`, a `checkpoint-N/`, a bare
    adapter folder, a model folder, or 'tiny-demo'. `model_source` replaces the base model;
    `base` asks for the base model alone (a run needs no adapter for that).
    """
    target = _resolve(Path(str(path)).expanduser(), str(path), checkpoint, base, model_source)
    if base and target.kind != "base":
        target = target.base_only()
    return target.with_model_source(model_source) if model_source else target


def _resolve(
    path: Path, written: str, checkpoint: int | str | None, base: bool, model_source: str | None
) -> ChatTarget:
    if not path.exists():
        if written == TINY_MODEL_NAME:
            return base_target(TINY_MODEL_NAME)
        raise ModelError(
            f"no such run, adapter or model folder: {written}",
            advice="point at a run folder (runs/<name>), its adapter/ or a "
            "checkpoints/checkpoint-N folder; `--model SOURCE` alone chats with a base model",
        )
    if not path.is_dir():
        raise ModelError(
            f"{written} is a file, not a folder",
            advice="point at the run folder that holds config.yaml, not a file in it",
        )
    if (path / "config.yaml").is_file():
        return run_target(path, checkpoint, base=base)
    if checkpoint is not None:
        raise ModelError(
            f"{written} is not a run folder, so it has no checkpoints",
            advice="checkpoints belong to a run: point at the run folder",
        )
    parent = path.parent
    if path.name == "adapter" and (parent / "config.yaml").is_file():
        return run_target(parent, base=base)
    match = CHECKPOINT_NAME.match(path.name)
    if match and parent.name == "checkpoints" and (parent.parent / "config.yaml").is_file():
        return run_target(parent.parent, int(match.group(1)), base=base)
    if _is_trained_folder(path):
        return _adapter_target(path, model_source)
    if (path / "config.json").is_file():
        return base_target(str(path))
    raise ModelError(
        f"{written} is not a run, an adapter or a model folder",
        advice="a run folder holds config.yaml; an adapter folder adapter_config.json; "
        "a model folder config.json",
    )


def _adapter_target(folder: Path, model_source: str | None = None) -> ChatTarget:
    """A bare adapter folder: the base model is the one its adapter_config.json names."""
    base = model_source
    peft_config = folder / PEFT_CONFIG_FILE
    if not base and peft_config.is_file():
        base = str_field(read_json_object(peft_config).data, "base_model_name_or_path")
    if not base:
        raise ModelError(
            f"cannot tell which base model the adapter in {folder} belongs to",
            advice="name the base model with --model (a folder, a hub id or 'tiny-demo')",
        )
    return ChatTarget(kind="adapter", model=ModelSettings(source=base), adapter_dir=folder)


def run_is_active(run_dir: str | Path) -> bool:
    """True when status.json says the run is training and its process is alive."""
    status = read_json_object(Path(run_dir) / "status.json")
    return not status.problem and effective_state(status.data) in ACTIVE_STATES


def _pick_checkpoint(run_dir: Path, checkpoint: int | str) -> Checkpoint:
    checkpoints = list_checkpoints(Path(run_dir))
    complete = [info for info in checkpoints if info.complete]
    if str(checkpoint) == "latest":
        if not complete:
            raise ModelError(
                f"run {run_dir.name} has no complete checkpoint yet",
                advice=_no_checkpoint_advice(run_dir, checkpoints),
            )
        return complete[-1]
    step = _step_number(checkpoint)
    info = next((item for item in checkpoints if item.step == step), None)
    available = ", ".join(str(item.step) for item in complete) or "none yet"
    if info is None:
        raise ModelError(
            f"run {run_dir.name} has no checkpoint-{step}",
            advice=f"complete checkpoints: {available} (older ones are removed as training "
            "goes on, keeping training.save_total_limit)",
        )
    if not info.complete:
        raise ModelError(
            f"checkpoint-{step} of run {run_dir.name} is still being written",
            advice=f"wait a moment and try again, or pick a complete one: {available}",
        )
    return info


def _step_number(checkpoint: int | str) -> int:
    text = str(checkpoint).removeprefix("checkpoint-")
    if not text.isdigit():
        raise ModelError(
            f"'{checkpoint}' is not a checkpoint", advice="give a step number or 'latest'"
        )
    return int(text)


def _run_config(run_dir: Path) -> RunConfig:
    if not run_dir.is_dir():
        raise ModelError(
            f"run folder not found: {run_dir}",
            advice="runs are written to output.runs_dir (runs/ by default)",
        )
    try:
        return load_config(run_dir / "config.yaml")
    except ConfigError as error:
        raise ModelError(
            f"run {run_dir.name} has an unreadable config.yaml: {error.message}",
            advice="the run may come from another ftstudio version; point at its adapter/ "
            "folder and name the base model with --model",
        ) from None


def _is_trained_folder(folder: Path) -> bool:
    return (folder / PEFT_CONFIG_FILE).is_file() or (folder / METHOD_FILE).is_file()


def _no_adapter_advice(run_dir: Path) -> str:
    checkpoints = list_checkpoints(Path(run_dir))
    complete = [info for info in checkpoints if info.complete]
    training = "it is still training; " if run_is_active(run_dir) else ""
    if complete:
        newest = complete[-1]
        return (
            f"{training}chat with its newest checkpoint: {newest.path} "
            "(or --checkpoint latest), or with the base model alone (--base)"
        )
    return training + _no_checkpoint_advice(run_dir, checkpoints)


def _no_checkpoint_advice(run_dir: Path, checkpoints: list[Checkpoint]) -> str:
    if checkpoints:
        return "its first checkpoint is still being written; try again in a moment"
    return (
        "it has saved no checkpoint yet (set training.save_steps to save them during "
        "training); chat with the base model alone with --base"
    )
