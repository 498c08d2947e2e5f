"""Messages from the trainer thread to the UI.

The trainer's subscriber records every event in the `RunMonitor` first, so a progress message
only says "there is news": when the UI falls behind, queued `RunProgress` messages replace one
another (`can_replace`) and the screen draws the newest state once.
"""

from __future__ import annotations

from textual.message import Message

from studio.engine.events import RunError, RunFinished, RunState


class RunProgress(Message):
    """Step metrics, eval metrics, telemetry or log lines arrived; read them from the monitor."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunProgress)


class RunStateChanged(Message):
    """The run moved to another state (running, paused, stopping, finished, ...)."""

    def __init__(self, state: RunState, detail: str) -> None:
        super().__init__()
        self.state = state
        self.detail = detail


class RunFailed(Message):
    """The engine reported a failure with advice."""

    def __init__(self, error: RunError) -> None:
        super().__init__()
        self.error = error


class RunCompleted(Message):
    """The run ended (finished, stopped or failed) and the summary is known."""

    def __init__(self, summary: RunFinished) -> None:
        super().__init__()
        self.summary = summary
