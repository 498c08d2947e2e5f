"""Symbols the screens draw, with plain ASCII stand-ins for terminals that lack the glyphs.

The Linux console (`TERM=linux`) shows a box or a question mark for ✓, ✗, ●, …, the quadrant
blocks of the plots and round border corners. There (or with `FTSTUDIO_ASCII=1`, for any
terminal whose font lacks them) the studio draws ASCII instead: `plain_terminal()` decides
once, from the environment, and the app sets the `-ascii` class so the stylesheets swap round
borders for ASCII ones. The locale is not a sign: Textual writes UTF-8 whatever LANG says, and
an SSH session often arrives without one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# name: (the glyph, its ASCII stand-in)
GLYPHS: dict[str, tuple[str, str]] = {
    "check": ("✓", "+"),
    "cross": ("✗", "x"),
    "dot": ("●", "*"),
    "ellipsis": ("…", "~"),
    "prompt": ("»", ">"),
    "bar-full": ("█", "#"),
    "bar-empty": ("░", "."),
}


def plain_terminal(environ: Mapping[str, str] | None = None) -> bool:
    """True where the terminal cannot be trusted with more than ASCII: the Linux console, or
    FTSTUDIO_ASCII set (to anything but 0)."""
    env = os.environ if environ is None else environ
    if env.get("FTSTUDIO_ASCII", "") not in ("", "0"):
        return True
    return env.get("TERM", "") == "linux"


_PLAIN = plain_terminal()


def glyph(name: str) -> str:
    """The symbol `name`, or its ASCII stand-in on a plain terminal."""
    fancy, plain = GLYPHS[name]
    return plain if _PLAIN else fancy


def set_plain(plain: bool) -> None:
    """Decide again (tests, and the app when it starts)."""
    global _PLAIN
    _PLAIN = plain


def is_plain() -> bool:
    return _PLAIN
