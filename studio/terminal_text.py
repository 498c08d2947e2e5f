"""Untrusted text made safe to show on a terminal: the one place that does it.

Dataset fields, model names, file names, error messages, logs and model output can hold
control characters. Written raw, `ESC ] 52` sets the user's clipboard, `ESC [ 2J` clears the
screen, `\\r` overwrites what was printed, and bidi overrides make text read differently from
what it is. `printable` shows each such character as a visible escape (`\\x1b`, `\\u202e`)
and keeps newlines and tabs. Every headless command writes through `SafeTextStream` (see
`studio.cli`); the TUI calls `printable` where it renders untrusted text, because Textual's
markup escaping leaves raw control characters alone.
"""

from __future__ import annotations

import re
from typing import Any, TextIO

# C0 controls but newline and tab, DEL, C1 controls, bidi embeddings / overrides / isolates,
# line and paragraph separators, and lone surrogates (undecodable bytes kept by
# surrogateescape, which would make the write itself fail).
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
    "\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """`text` (anything, made a string) with every control character shown as an escape."""
    value = text if isinstance(text, str) else str(text)
    return _UNSAFE.sub(_escape, value)


def is_printable(text: str) -> bool:
    return _UNSAFE.search(text) is None


class SafeTextStream:
    """A text stream that passes everything written through `printable`.

    The command's own cursor control (the progress line's carriage return) goes through
    `write_control`, which is the only way to put a control character on the terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.raw = stream

    def write(self, text: str) -> int:
        self.raw.write(printable(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def write_control(self, sequence: str) -> None:
        self.raw.write(sequence)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def write_control(stream: TextIO, sequence: str) -> None:
    """Write our own terminal control `sequence` to `stream`, past a `SafeTextStream`."""
    writer = getattr(stream, "write_control", None)
    if writer is not None:
        writer(sequence)
    else:
        stream.write(sequence)
