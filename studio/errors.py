"""Errors a user can fix: what is wrong, where, and how to fix it.

Anything raised as a `StudioError` is shown to the user as a message, never as a traceback.
"""

from __future__ import annotations


class StudioError(Exception):
    """A problem with the user's input or environment that the user can fix."""

    def __init__(
        self, message: str, *, advice: str | None = None, location: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.advice = advice
        self.location = location

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        if self.advice:
            text += f"\n  hint: {self.advice}"
        return text


class ConfigError(StudioError):
    """The run config is invalid."""


class DataError(StudioError):
    """A dataset cannot be read or has no usable records."""


class ModelError(StudioError):
    """A model cannot be found or loaded."""
