"""The engine's subscriber in the TUI: record each event, then tell the app there is news.

Runs on the trainer (and telemetry) thread, so it never touches a widget: it writes to the
thread-safe `RunMonitor` and posts messages, which Textual delivers on the UI thread. Fast
events become at most one `RunProgress` message in flight (and queued ones coalesce through
`can_replace`); state changes, failures and the summary are never dropped.
"""

from __future__ import annotations

from textual.message_pump import MessagePump

from studio.engine.events import RunError, RunEvent, RunFinished, StateChanged
from studio.ui.runs.messages import RunCompleted, RunFailed, RunProgress, RunStateChanged
from studio.ui.runs.monitor import RunMonitor


class TrainerBridge:
    def __init__(self, target: MessagePump, monitor: RunMonitor) -> None:
        self.target = target
        self.monitor = monitor

    def __call__(self, event: RunEvent) -> None:
        self.monitor.record(event)
        monitor = self.monitor
        if isinstance(event, StateChanged):
            self.target.post_message(RunStateChanged(monitor, event.state, event.message))
        elif isinstance(event, RunError):
            self.target.post_message(RunFailed(monitor, event))
        elif isinstance(event, RunFinished):
            self.target.post_message(RunCompleted(monitor, event))
        elif monitor.claim_notification():
            # At most one progress message in flight: whatever arrives before the UI reads
            # it is in the monitor already, so more messages would only cost wake-ups.
            self.target.post_message(RunProgress(monitor))
