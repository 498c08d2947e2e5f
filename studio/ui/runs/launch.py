"""Sessions the Runs screen starts for an old run: resume it, or relaunch it after running out
of memory with one of the triage's changes.

`RunController.resume_run` checks the run can go on, then runs `train_session` on the trainer
worker with a factory from here. The monitor is seeded (on the worker, not the UI thread) with
the run's history up to the checkpoint it goes on from, so the Train screen shows the whole loss
curve, not just the steps trained after the resume. Nothing here touches a widget.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from textual.message_pump import MessagePump

from studio.engine.events import EventBus, RunFinished
from studio.ui.runs.messages import RunProgress
from studio.ui.runs.monitor import RunMonitor
from studio.ui.runs.trainer_bridge import TrainerBridge

# (bus, control) -> a TrainingSession that has not started.
SessionFactory = Callable[[EventBus, Any], Any]


def resume_factory(run: Path, changes: Mapping[str, Any] | None, **options: Any) -> SessionFactory:
    """Go on with `run` from its last complete checkpoint, `changes` (dotted keys) applied."""
    overrides = dict(changes or {})

    def make(bus: EventBus, control: Any) -> Any:
        # In-process, or as a torchrun group when the run's devices say so.
        from studio.engine.launcher import session_for_resume

        return session_for_resume(run, bus, control, changes=overrides, **options)

    return make


def relaunch_factory(run: Path, choice: Any, **options: Any) -> SessionFactory:
    """Relaunch an out-of-memory `run` with a triage `choice` (a `MemoryChoice`)."""

    def make(bus: EventBus, control: Any) -> Any:
        from studio.runs.triage import relaunch_session

        return relaunch_session(run, choice, bus, control, **options)

    return make


def seed_history(monitor: RunMonitor, run: Path) -> int:
    """Record `run`'s logged metrics up to its last complete checkpoint (the steps a resume
    keeps) into `monitor`; returns that step (0 when there is no checkpoint)."""
    from studio.engine.checkpoints import last_complete_checkpoint
    from studio.engine.follower import metric_event
    from studio.engine.run_dir import read_metrics

    checkpoint = last_complete_checkpoint(run)
    kept = checkpoint.step if checkpoint is not None else 0
    if kept == 0:
        return 0
    for record in read_metrics(run / "metrics.jsonl"):
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            continue  # a torn or foreign line: the follower skips those too
        if record["step"] > kept:
            continue
        event = metric_event(record)
        if event is not None:
            monitor.record(event)
    return kept


def train_session(
    target: MessagePump,
    make_session: SessionFactory,
    monitor: RunMonitor,
    control: Any,
    history_from: Path | None = None,
) -> RunFinished:
    """The trainer worker's body: show the earlier steps of the run it goes on with (when
    `history_from`), build the session (reads the run folder), train to the end."""
    from studio.ui.chrome.heavy_imports import ensure_ml_imports

    if history_from is not None and seed_history(monitor, history_from):
        target.post_message(RunProgress(monitor))
    ensure_ml_imports()
    bus = EventBus()
    bus.subscribe(TrainerBridge(target, monitor))
    return make_session(bus, control).run()
