"""Helpers for Pilot tests of the real app (the app factory and settle are in studio.ui)."""

from __future__ import annotations

from collections.abc import Callable

from textual.message import Message
from textual.notifications import Notify


def collect_notes(notes: list[str]) -> Callable[[Message], None]:
    """A `run_test(message_hook=...)` that appends every toast's text to `notes`."""

    def hook(message: Message) -> None:
        if isinstance(message, Notify):
            notes.append(message.notification.message)

    return hook
