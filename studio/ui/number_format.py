"""Numbers as the screens print them: bytes, parameter counts, durations, losses."""

from __future__ import annotations

from studio.cli_train import format_duration

__all__ = ["format_bytes", "format_count", "format_duration", "format_loss", "format_rate"]

KIB = 1024
MIB = 1024**2
GIB = 1024**3


def format_bytes(value: float | None) -> str:
    if value is None:
        return "?"
    if value >= GIB:
        return f"{value / GIB:.1f} GiB"
    if value >= MIB:
        return f"{value / MIB:.0f} MiB"
    if value >= KIB:
        return f"{value / KIB:.0f} KiB"
    return f"{value:.0f} B"


def format_count(value: float | None) -> str:
    """Parameter counts: 1.5B, 494M, 2.4M, 812K."""
    if value is None:
        return "?"
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= size:
            number = value / size
            return f"{number:.1f}{unit}" if number < 100 else f"{number:.0f}{unit}"
    return f"{value:.0f}"


def format_loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def format_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"
