"""Past and present runs: list, open, compare, delete, export, triage. No UI, no torch on import.

The Runs screen and `ftstudio runs` / `ftstudio export` are thin layers over these. Resuming a
run is the engine's (`studio.engine.session.TrainingSession.resume`); attaching to a run that
another process trains is `studio.engine.follower.RunFollower` with
`studio.engine.remote_control.RemoteControl`.
"""

from studio.runs.catalog import (
    SORT_KEYS,
    STATUSES,
    RunCurves,
    RunSummary,
    config_for_rerun,
    find_run,
    list_runs,
    load_run_config,
    read_curves,
    read_run,
    resume_blocker,
)
from studio.runs.compare import (
    Comparison,
    ConfigDifference,
    compare_runs,
    config_unified_diff,
    render_loss_overlay,
)
from studio.runs.deletion import ConfirmationRequired, DeletePlan, delete_run, plan_delete
from studio.runs.export import ExportResult, export_run, push_to_hub
from studio.runs.triage import OutOfMemoryTriage, diagnose, relaunch, relaunch_session

__all__ = [
    "SORT_KEYS",
    "STATUSES",
    "Comparison",
    "ConfigDifference",
    "ConfirmationRequired",
    "DeletePlan",
    "ExportResult",
    "OutOfMemoryTriage",
    "RunCurves",
    "RunSummary",
    "compare_runs",
    "config_for_rerun",
    "config_unified_diff",
    "delete_run",
    "diagnose",
    "export_run",
    "find_run",
    "list_runs",
    "load_run_config",
    "plan_delete",
    "push_to_hub",
    "read_curves",
    "read_run",
    "relaunch",
    "relaunch_session",
    "render_loss_overlay",
    "resume_blocker",
]
