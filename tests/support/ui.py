"""Helpers for driving the studio in tests and snapshots (Textual's Pilot).

`isolated_services` points every folder the app reads or writes at a temporary one, so a test
never touches the user's settings, themes or Hugging Face cache; `settle` waits until the
app's background work is done, so what a test checks or photographs is the final state.
"""

from __future__ import annotations

import asyncio
import time
from functools import lru_cache
from pathlib import Path

from rich.color import Color as RichColor
from rich.color import ColorSystem
from rich.segment import Segment
from rich.style import Style
from rich.terminal_theme import DEFAULT_TERMINAL_THEME
from textual.color import Color
from textual.filter import LineFilter
from textual.pilot import Pilot
from textual.widgets import Input

from studio.ui.chrome.state import StudioServices

REPO = Path(__file__).resolve().parents[2]


def isolated_services(
    tmp_path: Path, theme: str | None = None, workdir: Path = REPO
) -> StudioServices:
    """Services for a test: settings, themes and hub cache in `tmp_path`, data from the repo."""
    config_dir = tmp_path / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    settings = config_dir / "settings.yaml"
    if theme is not None:
        settings.write_text(f"theme: {theme}\n", encoding="utf-8")
    hub = tmp_path / "hub-cache"
    hub.mkdir(exist_ok=True)
    return StudioServices(
        workdir=workdir,
        hub_cache_dir=hub,
        settings_file=settings,
        user_themes_dir=config_dir / "themes",
        telemetry_interval=None,
    )


async def settle(pilot: Pilot, timeout: float = 120.0) -> None:
    """Wait until no worker runs and the messages they posted have been handled."""
    app = pilot.app
    deadline = time.monotonic() + timeout
    quiet_rounds = 0
    while quiet_rounds < 2:
        await pilot.pause()
        # Throttled redraws and debounced previews would otherwise land whenever their timers
        # fire: run them now (a preview starts a worker, which the loop then waits for).
        for screen in app.screen_stack:  # a dialog's screen below shows through
            redraw_now = getattr(screen, "redraw_now", None)
            if redraw_now is not None and screen.is_mounted:
                redraw_now()
        running = [worker for worker in app.workers if worker.is_running]
        if running:
            quiet_rounds = 0
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                names = ", ".join(f"{w.group}:{w.name}" for w in running)
                raise TimeoutError(f"workers still running after {timeout:.0f} s: {names}")
            try:
                await asyncio.wait_for(app.workers.wait_for_complete(running), remaining)
            except asyncio.TimeoutError:
                continue
        else:
            quiet_rounds += 1
    await pilot.pause()


def stop_cursor_blink(pilot: Pilot) -> None:
    """Blinking cursors would make screenshots differ from one run to the next."""
    for screen in pilot.app.screen_stack:
        for field in screen.query(Input):
            field.cursor_blink = False


class SixteenColours(LineFilter):
    """What a 16-colour terminal shows: every colour brought down to the nearest of the 16
    standard ones (as Rich does for `TERM=xterm` / `linux`), drawn with a common palette.
    Snapshots use it to check each theme stays readable there."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        return [Segment(text, _sixteen(style), control) for text, style, control in segments]


@lru_cache(maxsize=1024)
def _sixteen(style: Style | None) -> Style | None:
    if style is None:
        return None
    return style + Style.from_color(_down(style.color), _down(style.bgcolor))


def _down(colour: RichColor | None) -> RichColor | None:
    if colour is None or colour.is_default:
        return colour
    standard = colour.downgrade(ColorSystem.STANDARD)
    red, green, blue = standard.get_truecolor(DEFAULT_TERMINAL_THEME)
    return RichColor.from_rgb(red, green, blue)
