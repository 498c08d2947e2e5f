"""Commands from the user to a running trainer: pause, resume, stop, save now.

The trainer checks these between steps, so every command takes effect at a step boundary.
"""

from __future__ import annotations

import threading


class TrainingControl:
    def __init__(self) -> None:
        self._stop = threading.Event()
        self._save_now = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._running.set()
        self._failure: BaseException | None = None

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # a paused run must wake up to stop

    def fail(self, error: BaseException) -> None:
        """End the run with `error` at the next step boundary, without saving (for a run
        folder that was removed: saving would only make it again, half)."""
        self._failure = error
        self.stop()

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def request_save(self) -> None:
        self._save_now.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def take_save_request(self) -> bool:
        """True once per save request."""
        if self._save_now.is_set():
            self._save_now.clear()
            return True
        return False

    def wait_while_paused(self, poll_seconds: float = 0.2) -> None:
        while not self._running.wait(poll_seconds):
            if self._stop.is_set():
                return
