"""Attach the studio to a run that another process trains.

A headless `ftstudio train`, or an `ftstudio` whose terminal went away, keeps writing its run
directory. `AttachedRun` reads it back with the engine's `RunFollower` — the whole history
first, then what is appended, polled at a capped rate on a daemon thread — and feeds the events
to a `RunMonitor` through the same `TrainerBridge` the in-process trainer uses, so the Train
screen draws an attached run with the code it draws its own with. Its `control` is a
`RemoteControl`: pause, stop and save-now reach the other process through the run directory.

The follower thread is a daemon thread rather than a Textual worker: it only reads small files
and never blocks the app's exit, and it ends by itself when the run does.

`running_elsewhere` is the start-up check for runs another live process is training; it reads
status files only, never torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from textual.message_pump import MessagePump

from studio.engine.follower import RunFollower
from studio.engine.remote_control import RemoteControl
from studio.ui.runs.monitor import RunMonitor
from studio.ui.runs.trainer_bridge import TrainerBridge

# The follower reads at most this often: a few stats per poll, whatever the step rate.
POLL_SECONDS = 0.5


class AttachedRun:
    """A run followed from its folder: history replayed, then followed live."""

    def __init__(
        self, target: MessagePump, run_dir: str | Path, *, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self.path = Path(run_dir)
        self.monitor = RunMonitor()
        self.control = RemoteControl(self.path)
        self.follower = RunFollower(self.path, poll_seconds=poll_seconds)
        self._bridge = TrainerBridge(target, self.monitor)

    @property
    def name(self) -> str:
        return self.path.name

    def start(self) -> None:
        self.follower.start(self._bridge)

    @property
    def live(self) -> bool:
        """True until the follower has seen the run end (or was closed)."""
        thread = self.follower.thread
        return not self.follower.done and thread is not None and thread.is_alive()

    def close(self) -> None:
        """Stop following (the run itself goes on). Never waits: it is called on the UI
        thread, and what the follower still delivers names a monitor no screen shows."""
        self.follower.close(wait=False)


def attach_problem(run_dir: Path) -> str | None:
    """Why `run_dir` cannot be attached to, or None."""
    if not run_dir.is_dir():
        return f"no run folder at {run_dir}"
    if not (run_dir / "config.yaml").is_file():
        return f"{run_dir} is not a run folder (it has no config.yaml)"
    if not (run_dir / "status.json").is_file():
        # A run that crashed while its folder was being created: there is nothing to follow,
        # and without a status it would look like it was starting for ever.
        return f"{run_dir.name} never started (no status.json); delete it on the Runs screen"
    return None


@dataclass(frozen=True)
class RunningRun:
    """A run another live process is training."""

    name: str
    path: Path
    pid: int | None


def running_elsewhere(runs_dir: Path) -> list[RunningRun]:
    """Runs in `runs_dir` that a live process other than this one is training, newest first."""
    from studio.runs.catalog import list_runs

    try:
        runs = list_runs(runs_dir, status="running")
    except Exception:  # an unreadable runs folder must never stop the studio from starting
        return []
    return [RunningRun(run.name, run.path, run.pid) for run in runs if run.pid != os.getpid()]
