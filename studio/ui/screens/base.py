"""The frame every top-level screen shares: header with tabs and run status, body, footer."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, TextArea
from textual.worker import Worker

from studio.ui.widgets.header import StudioHeader

if TYPE_CHECKING:
    from studio.ui.app import StudioApp


class StudioScreen(Screen[None]):
    """A top-level screen; subclasses set MODE and write `compose_body`."""

    MODE: ClassVar[str] = ""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave_field", "Leave field", show=False),
    ]

    @property
    def studio_app(self) -> StudioApp:
        """The app, typed."""
        return cast("StudioApp", self.app)

    def compose(self) -> ComposeResult:
        yield StudioHeader(self.MODE)
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def home_widget(self) -> Widget | None:
        """Where focus goes when esc leaves a text field (the screen's main list)."""
        return None

    def action_leave_field(self) -> None:
        """esc in a text field leaves it, so single keys (1-5, ?, the screen's keys) work."""
        if isinstance(self.focused, (Input, TextArea)):
            home = self.home_widget()
            if home is not None:
                home.focus()
            else:
                self.set_focus(None)

    def redraw_now(self) -> None:
        """Draw whatever waits on a throttle now; tests and snapshots call it so what they
        check does not depend on timing. Screens with more throttled widgets extend it."""
        for header in self.query(StudioHeader):
            header.redraw_now()

    @on(Worker.StateChanged)
    def _worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Worker messages do not bubble; failures go to the app's single handler.
        self.studio_app.worker_failed(event)
