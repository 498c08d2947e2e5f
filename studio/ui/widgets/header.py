"""The one-line header of every screen: app name, the screens as tabs, the run's status.

The tabs are clickable (mouse) and show the number key of each screen (keyboard). The status
shows the training run from any screen, refreshed at most once a second.
"""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Static

from studio.engine.events import RunState
from studio.formatting import format_loss
from studio.ui.chrome.glyphs import glyph
from studio.ui.chrome.navigation import DESTINATIONS
from studio.ui.chrome.throttle import Throttle
from studio.ui.runs.monitor import RunMonitor

STATUS_INTERVAL = 1.0
STATE_WORDS = {
    RunState.PREPARING: "preparing",
    RunState.RUNNING: "training",
    RunState.PAUSED: "paused",
    RunState.STOPPING: "stopping",
    RunState.FINISHED: "finished",
    RunState.STOPPED: "stopped",
    RunState.FAILED: "failed",
}


class NavigationTab(Static):
    """One screen's tab; a click switches to it."""

    def __init__(self, mode: str, key: str, title: str) -> None:
        super().__init__(f"{key} {title}", id=f"tab-{mode}", classes="nav-tab", markup=False)
        self.mode = mode

    async def on_click(self, event: events.Click) -> None:
        event.stop()
        await self.app.run_action(f"show('{self.mode}')")


class StudioHeader(Horizontal):
    """Title, screen tabs and run status; `current` is the mode of the screen it sits on."""

    def __init__(self, current: str) -> None:
        super().__init__(id="studio-header")
        self.current = current
        self._throttle = Throttle(self, STATUS_INTERVAL, self._show_status)

    def compose(self) -> ComposeResult:
        yield Label("ftstudio", id="app-name")
        for destination in DESTINATIONS:
            tab = NavigationTab(destination.mode, destination.key, destination.title)
            if destination.mode == self.current:
                tab.add_class("-current")
            yield tab
        yield Label("", id="run-status", markup=False)

    def on_mount(self) -> None:
        runs = self.app.runs  # type: ignore[attr-defined]  # StudioApp's
        runs.changed.subscribe(self, lambda _monitor: self._throttle.request())
        self._show_status()

    def redraw_now(self) -> None:
        self._throttle.flush()

    def _show_status(self) -> None:
        runs = getattr(self.app, "runs", None)  # the run controller (`StudioApp.runs`)
        monitor: RunMonitor | None = runs.monitor if runs is not None else None
        label = self.query_one("#run-status", Label)
        if monitor is None or monitor.state is None:
            label.update("", layout=False)
            label.set_classes("")
            return
        state = monitor.state
        latest = monitor.latest
        text = STATE_WORDS.get(state, state.value)
        if latest is not None:
            text += f" {latest.step}/{latest.max_steps}"
            if latest.loss is not None and state in (RunState.RUNNING, RunState.PAUSED):
                text += f" loss {format_loss(latest.loss)}"
        label.update(f"{glyph('dot')} {text}", layout=False)  # fixed size: repaint only
        label.set_classes(f"-{state.value}")
