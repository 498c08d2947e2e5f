"""Sizes, durations and numbers as ftstudio prints them: one place for the CLI and the TUI.

Bytes are binary units (KiB, MiB, GiB: powers of 1024), as NVML, torch and `du -h` report
memory and files. Every function takes `None` for "not known" and prints a placeholder.
"""

from __future__ import annotations

__all__ = [
    "GIB",
    "KIB",
    "MIB",
    "format_bytes",
    "format_count",
    "format_duration",
    "format_loss",
    "format_rate",
    "gib",
]

KIB = 1024
MIB = 1024**2
GIB = 1024**3


def format_bytes(value: float | None, missing: str = "?", *, decimals: int | None = None) -> str:
    """A size with its unit: `1.5 GiB`, `300 MiB`, `12 KiB`, `512 B`; `missing` when unknown.

    `decimals` fixes the decimals in every unit (`1.0 MiB`); by default GiB get one and the
    smaller units none."""
    if value is None:
        return missing
    for size, unit, default in ((GIB, "GiB", 1), (MIB, "MiB", 0), (KIB, "KiB", 0)):
        if value >= size:
            shown = default if decimals is None else decimals
            return f"{value / size:.{shown}f} {unit}"
    return f"{value:.0f} B"


def gib(value: float | None, decimals: int = 1) -> str:
    """Bytes as a number of GiB with no unit (`61.2`), or `?` when unknown.

    For texts that put several figures before one unit: `61.2/79.6 GiB`."""
    return "?" if value is None else f"{value / GIB:.{decimals}f}"


def format_count(value: float | None) -> str:
    """Parameter counts: 1.5B, 494M, 2.4M, 812K."""
    if value is None:
        return "?"
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= size:
            number = value / size
            return f"{number:.1f}{unit}" if number < 100 else f"{number:.0f}{unit}"
    return f"{value:.0f}"


def format_duration(seconds: float | None) -> str:
    """`mm:ss` under an hour, `h:mm:ss` above; `--:--` when unknown (an ETA before step 1)."""
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def format_loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def format_rate(value: float | None) -> str:
    """A learning rate: `2.00e-04`."""
    return "-" if value is None else f"{value:.2e}"
