"""Cap how often something is redrawn: requests between two draws become one draw.

Over a slow SSH link every redraw costs bytes; per-step messages can arrive far faster than
anyone can read numbers, so widgets redraw through a `Throttle` at a few times a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.message_pump import MessagePump
from textual.timer import Timer


class Throttle:
    """Call `callback` at most once per `interval` seconds, soon after the latest request."""

    def __init__(self, owner: MessagePump, interval: float, callback: Callable[[], None]) -> None:
        self.owner = owner
        self.interval = interval
        self.callback = callback
        self._last = 0.0
        self._timer: Timer | None = None

    def request(self) -> None:
        if self._timer is not None:
            return  # a draw is already scheduled; it will show the newest data
        wait = self._last + self.interval - time.monotonic()
        if wait <= 0:
            self._run()
        else:
            self._timer = self.owner.set_timer(wait, self._run)

    def _run(self) -> None:
        self._timer = None
        self._last = time.monotonic()
        self.callback()

    def flush(self) -> None:
        """Draw now (e.g. when the screen becomes visible again)."""
        if self._timer is not None:
            self._timer.stop()
        self._run()
