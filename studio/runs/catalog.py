"""Every run in a runs folder, as the Runs screen and `ftstudio runs` list them.

Reading a run touches only small files (status.json, config.yaml, the adapter folder's sizes;
metrics.jsonl only for runs written before status.json carried a best loss), never torch, so a
folder of hundreds of runs lists at once. A run whose status.json says it is active but whose
process is gone shows as `interrupted`, never as running.

No file of a run folder is trusted (see `engine.run_files`): a missing, torn or hand-edited
status.json, a config.yaml that is not a mapping or not UTF-8, a metrics line that is not an
object, all make that run show as `damaged` with the reason (`RunSummary.damage`); every other
run lists as usual.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from studio.config.files import read_yaml_file
from studio.engine.checkpoints import complete_checkpoints, resume_problem
from studio.engine.liveness import ACTIVE_STATES, INTERRUPTED, effective_state
from studio.engine.run_dir import RunDirectory, read_metrics
from studio.errors import ConfigError
from studio.run_files import (
    int_field,
    mapping_field,
    number_field,
    str_field,
    wrong_field,
)

DAMAGED = "damaged"
# The fields of status.json a listing reads, and their types.
STATUS_FIELDS: dict[str, type] = {
    "state": str,
    "step": int,
    "max_steps": int,
    "pid": int,
    "started": float,
    "process_started": float,
    "duration_seconds": float,
    "loss": float,
    "final_loss": float,
    "best_loss": float,
    "best_eval_loss": float,
    "error": dict,
}
STATUSES = ("running", "finished", "stopped", "failed", INTERRUPTED, DAMAGED)
SORT_KEYS = (
    "date",
    "name",
    "model",
    "method",
    "type",
    "status",
    "steps",
    "loss",
    "best_loss",
    "duration",
    "size",
)


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs list."""

    name: str
    path: Path
    status: str  # running, finished, stopped, failed, interrupted
    state: str  # the engine state status.json records (preparing, paused, ... as well)
    started: float | None
    model: str
    method: str
    training_type: str
    step: int
    max_steps: int | None
    final_loss: float | None
    best_loss: float | None
    best_eval_loss: float | None
    duration_seconds: float | None
    adapter_bytes: int | None
    checkpoints: int
    last_checkpoint: int | None
    pid: int | None
    error_kind: str | None = None
    error_message: str | None = None
    resumable: bool = False
    # Why the run folder cannot be read as it should (status.json torn, config.yaml not a
    # mapping, ...); None for a healthy run.
    damage: str | None = None

    @property
    def date(self) -> str:
        if self.started is None:
            return "-"
        return datetime.fromtimestamp(self.started).strftime("%Y-%m-%d %H:%M")

    @property
    def is_running(self) -> bool:
        return self.status == "running"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["date"] = self.date
        return data


def read_config_mapping(run: Path) -> dict[str, Any]:
    """A run's config.yaml as written, not validated: its mapping, or {} when it holds none.

    A `ConfigError` naming the file (and line) when it cannot be read, is not UTF-8 or not
    YAML."""
    file = read_yaml_file(
        run / "config.yaml", what="config.yaml", advice="fix or remove the run's config.yaml"
    )
    return file.data if isinstance(file.data, dict) else {}


def _read_config_fields(path: Path) -> tuple[dict[str, Any], str | None]:
    """What the runs list shows of the config, and what is wrong with it; a broken one shows
    as unknown ("?")."""
    try:
        data = read_config_mapping(path)
    except ConfigError as error:
        return {}, error.message  # "config.yaml is not UTF-8 text": the line is in the error
    if not data:
        return {}, "config.yaml holds no settings"
    for section in ("model", "method", "data", "training", "output"):
        allowed = (dict, str) if section == "method" else (dict,)  # `method: lora` is fine
        if data.get(section) is not None and not isinstance(data[section], allowed):
            return data, f"config.yaml: `{section}` is not a section"
    return data, None


def folder_bytes(path: Path) -> int:
    total = 0
    for root, _folders, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                continue
    return total


def _number(value: Any) -> float | None:
    return number_field({"value": value}, "value")


def _text(value: Any, default: str = "?") -> str:
    return value if isinstance(value, str) and value else default


def read_run(path: str | Path) -> RunSummary:
    """The summary of one run folder; a damaged one reads as `damaged` with the reason."""
    path = Path(path)
    run = RunDirectory(path)
    status_file = run.status_file()
    status = status_file.data
    config, config_problem = _read_config_fields(path)
    status_problem = wrong_field(status, STATUS_FIELDS)
    damage = (
        status_file.problem
        or (f"status.json: {status_problem}" if status_problem else None)
        or config_problem
    )
    method = config.get("method")
    method_name = str_field(method, "name") if isinstance(method, dict) else method
    shown = effective_state(status)
    raw_state = str_field(status, "state") or "preparing"
    if shown in ACTIVE_STATES:
        shown = "running"
    if damage and shown != "running":
        shown = DAMAGED
    best_loss = number_field(status, "best_loss")
    final_loss = number_field(status, "final_loss")
    if final_loss is None:
        final_loss = number_field(status, "loss")
    if best_loss is None and status.get("state") and run.metrics_path.exists():
        losses = [
            loss
            for record in read_metrics(run.metrics_path)
            if record.get("type") == "train" and (loss := number_field(record, "loss")) is not None
        ]
        best_loss = min(losses) if losses else None
    duration = number_field(status, "duration_seconds")
    started = number_field(status, "started")
    if shown == "running":
        since = number_field(status, "process_started") or started
        duration = (duration or 0.0) + (time.time() - since) if since else None
    adapter = path / "adapter"
    checkpoints = complete_checkpoints(path)
    error = mapping_field(status, "error")
    if started is None:
        try:
            started = (path / "config.yaml").stat().st_mtime
        except OSError:
            started = None
    return RunSummary(
        name=path.name,
        path=path,
        status=shown,
        state=raw_state,
        started=started,
        model=_text(str_field(mapping_field(config, "model"), "source")),
        method=_text(method_name),
        training_type=_text(config.get("training_type")),
        step=int_field(status, "step", 0) or 0,
        max_steps=int_field(status, "max_steps"),
        final_loss=final_loss,
        best_loss=best_loss,
        best_eval_loss=_number(status.get("best_eval_loss")),
        duration_seconds=duration,
        adapter_bytes=folder_bytes(adapter) if adapter.is_dir() else None,
        checkpoints=len(checkpoints),
        last_checkpoint=checkpoints[-1].step if checkpoints else None,
        pid=int_field(status, "pid"),
        error_kind=str_field(error, "kind") or (INTERRUPTED if shown == INTERRUPTED else None),
        error_message=str_field(error, "message"),
        resumable=shown in ("stopped", "failed", INTERRUPTED)
        or (shown == DAMAGED and config_problem is None),
        damage=damage,
    )


def is_run_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.yaml").is_file() and not path.name.startswith(".")


def _sort_value(run: RunSummary, key: str) -> Any:
    values = {
        "date": run.started,
        "name": run.name,
        "model": run.model,
        "method": run.method,
        "type": run.training_type,
        "status": run.status,
        "steps": run.step,
        "loss": run.final_loss,
        "best_loss": run.best_loss,
        "duration": run.duration_seconds,
        "size": run.adapter_bytes,
    }
    value = values[key]
    # Missing values sort last whichever the direction.
    return (value is None, value if value is not None else 0)


def list_runs(
    runs_dir: str | Path,
    *,
    sort: str = "date",
    descending: bool | None = None,
    status: str | Iterable[str] | None = None,
    search: str | None = None,
) -> list[RunSummary]:
    """Every run in `runs_dir`. `sort` is one of SORT_KEYS (newest first for "date", else
    ascending, unless `descending` says otherwise); `status` keeps runs with that status (or
    any of several); `search` keeps runs whose name, model or method contains it."""
    if sort not in SORT_KEYS:
        raise ConfigError(
            f"unknown sort key '{sort}'", advice=f"use one of: {', '.join(SORT_KEYS)}"
        )
    folder = Path(runs_dir).expanduser()
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    runs = [read_run(entry) for entry in entries if is_run_folder(entry)]
    if status is not None:
        wanted = {status} if isinstance(status, str) else set(status)
        unknown = wanted - set(STATUSES)
        if unknown:
            raise ConfigError(
                f"unknown status '{', '.join(sorted(unknown))}'",
                advice=f"use one of: {', '.join(STATUSES)}",
            )
        runs = [run for run in runs if run.status in wanted]
    if search:
        needle = search.lower()
        runs = [
            run
            for run in runs
            if needle in run.name.lower() or needle in run.model.lower() or needle in run.method
        ]
    reverse = (sort == "date") if descending is None else descending
    present = [run for run in runs if _sort_value(run, sort)[0] is False]
    missing = [run for run in runs if _sort_value(run, sort)[0] is True]
    present.sort(key=lambda run: _sort_value(run, sort), reverse=reverse)
    return present + missing


def find_run(ref: str | Path, runs_dir: str | Path = "runs") -> Path:
    """A run folder from a path, a name in `runs_dir`, or the unique start of a name."""
    candidate = Path(ref).expanduser()
    if is_run_folder(candidate):
        return candidate
    folder = Path(runs_dir).expanduser()
    named = folder / str(ref)
    if is_run_folder(named):
        return named
    try:
        matches = [
            entry
            for entry in sorted(folder.iterdir())
            if entry.name.startswith(str(ref)) and is_run_folder(entry)
        ]
    except OSError:
        matches = []
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(match.name for match in matches[:5])
        raise ConfigError(f"'{ref}' matches several runs: {names}", advice="give more of the name")
    raise ConfigError(
        f"no run '{ref}' in {folder}",
        advice="`ftstudio runs --runs-dir DIR` lists the runs; a run folder's path works too",
    )


def load_run_config(run: str | Path) -> Any:
    """The validated config a run used."""
    from studio.config import load_config

    return load_config(Path(run) / "config.yaml")


def config_for_rerun(run: str | Path) -> Any:
    """An old run's config, ready to edit and start as a new run (a new folder name)."""
    config = load_run_config(run)
    config.output.run_name = None
    return config


@dataclass(frozen=True)
class RunCurves:
    """A run's metrics as (step, value) series."""

    train_loss: list[tuple[int, float]]
    eval_loss: list[tuple[int, float]]
    learning_rate: list[tuple[int, float]]


def read_curves(run: str | Path) -> RunCurves:
    records = [
        record
        for record in read_metrics(Path(run) / "metrics.jsonl")
        if int_field(record, "step") is not None
    ]
    train = [record for record in records if record.get("type") == "train"]

    def series(chosen: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
        points = []
        for record in chosen:
            value = number_field(record, key)
            if value is not None:
                points.append((int_field(record, "step") or 0, value))
        return points

    evals = [record for record in records if record.get("type") == "eval"]
    return RunCurves(
        train_loss=series(train, "loss"),
        eval_loss=series(evals, "loss"),
        learning_rate=series(train, "learning_rate"),
    )


def resume_blocker(run: str | Path) -> str | None:
    """Why a run cannot be resumed now, or None."""
    return resume_problem(RunDirectory(Path(run)))


def run_status(run: str | Path) -> dict[str, Any]:
    """A run's status.json object ({} when it is missing or damaged)."""
    return RunDirectory(Path(run)).read_status()
