"""A log pane that wraps its lines again when its width changes.

Textual's RichLog wraps a line once, when written: after the terminal shrinks (120 to 80
columns) the old lines are clipped at the right edge. This one keeps the text it was given
(as many lines as the log holds) and rewrites it at the new width.
"""

from __future__ import annotations

from collections import deque

from textual.events import Resize
from textual.widgets import RichLog


class WrappingLog(RichLog):
    """A plain-text RichLog (wrap on) that re-wraps on resize."""

    def __init__(self, *, max_lines: int = 1000, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=max_lines, wrap=True, markup=False, min_width=20)
        self._texts: deque[str] = deque(maxlen=max_lines)
        self._wrapped_at = 0

    def add_line(self, text: str) -> None:
        """Append one line of text (wrapped at the current width)."""
        self._texts.append(text)
        self.write(text)

    def clear(self) -> WrappingLog:
        self._texts.clear()
        super().clear()
        return self

    def on_resize(self, event: Resize) -> None:
        width = event.size.width
        if self._wrapped_at and width and width != self._wrapped_at and self._texts:
            at_end = self.is_vertical_scroll_end
            super().clear()
            for text in self._texts:
                self.write(text, scroll_end=at_end)
        if width:
            self._wrapped_at = width
