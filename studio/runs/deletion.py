"""Deleting a run, in two steps: `plan_delete` says what would go (to show and ask),
`delete_run(..., confirm=True)` deletes it. A run that is still training is never deleted."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from studio.errors import ConfigError, StudioError
from studio.formatting import MIB
from studio.runs.catalog import folder_bytes, read_run


class ConfirmationRequired(StudioError):
    """A destructive action was asked for without `confirm=True`."""


@dataclass(frozen=True)
class DeletePlan:
    """What deleting a run removes, to show before asking."""

    path: Path
    name: str
    status: str
    size_bytes: int
    checkpoints: int
    has_adapter: bool

    def describe(self) -> str:
        adapter = "its adapter, " if self.has_adapter else ""
        return (
            f"delete run {self.name} ({self.status}): {adapter}{self.checkpoints} "
            f"checkpoint(s), {self.size_bytes / MIB:.1f} MiB in {self.path}"
        )


def plan_delete(run: str | Path) -> DeletePlan:
    """Step one of deleting: what would go. Refuses a run that is still training."""
    summary = read_run(run)
    if summary.is_running:
        raise ConfigError(
            f"run {summary.name} is still training (pid {summary.pid})",
            advice="stop it first: ftstudio runs control RUN stop",
        )
    return DeletePlan(
        path=summary.path,
        name=summary.name,
        status=summary.status,
        size_bytes=folder_bytes(summary.path),
        checkpoints=summary.checkpoints,
        has_adapter=summary.adapter_bytes is not None,
    )


def delete_run(run: str | Path, *, confirm: bool = False) -> DeletePlan:
    """Step two: delete the run folder, only with `confirm=True` (after showing
    `plan_delete(run).describe()` to the user)."""
    plan = plan_delete(run)
    if not confirm:
        raise ConfirmationRequired(plan.describe(), advice="confirm to delete it")
    # Renamed first: a crash half-way leaves a hidden folder, not a broken run in the list.
    trash = plan.path.with_name(f".deleting-{plan.name}")
    shutil.rmtree(trash, ignore_errors=True)
    plan.path.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)
    return plan
