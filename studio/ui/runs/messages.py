"""Messages from the trainer thread to the UI.

The trainer's subscriber records every event in the `RunMonitor` first, so a progress message
only says "there is news": when the UI falls behind, queued `RunProgress` messages replace one
another (`can_replace`) and the screen draws the newest state once.

Each message names the monitor of the run it is about: a message still queued from a run the
studio has let go (a follower closing, a run replaced by a resume) is then told apart from the
current run's and dropped.
"""

from __future__ import annotations

from textual.message import Message

from studio.engine.events import RunError, RunFinished, RunState
from studio.ui.runs.monitor import RunMonitor


class RunMessage(Message):
    """News of the run whose events `monitor` records."""

    def __init__(self, monitor: RunMonitor) -> None:
        super().__init__()
        self.monitor = monitor


class RunProgress(RunMessage):
    """Step metrics, eval metrics, telemetry or log lines arrived; read them from the monitor."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunProgress) and message.monitor is self.monitor


class RunStateChanged(RunMessage):
    """The run moved to another state (running, paused, stopping, finished, ...)."""

    def __init__(self, monitor: RunMonitor, state: RunState, detail: str) -> None:
        super().__init__(monitor)
        self.state = state
        self.detail = detail


class RunFailed(RunMessage):
    """The engine reported a failure with advice."""

    def __init__(self, monitor: RunMonitor, error: RunError) -> None:
        super().__init__(monitor)
        self.error = error


class RunCompleted(RunMessage):
    """The run ended (finished, stopped or failed) and the summary is known."""

    def __init__(self, monitor: RunMonitor, summary: RunFinished) -> None:
        super().__init__(monitor)
        self.summary = summary
