"""A line plot of metrics over training steps (plotext through textual-plotext).

The owner sets the series and calls `refresh()` at a capped rate; the plot is built only when
Textual renders it. Long series are thinned to about two points per column first, so drawing
cost stays flat however long the run is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from textual.content import Content
from textual_plotext import PlotextPlot

from studio.ui.chrome.glyphs import is_plain
from studio.ui.chrome.themes import theme_colour

Point = tuple[float, float]


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[Point]
    colour_variable: str  # one of studio.ui.chrome.themes.APP_VARIABLES


def thin(points: Sequence[Point], limit: int) -> Sequence[Point]:
    """At most about `limit` points, evenly picked, always keeping the last one."""
    if len(points) <= limit or limit < 2:
        return points
    stride = len(points) / (limit - 1)
    picked = [points[int(index * stride)] for index in range(limit - 1)]
    return [*picked, points[-1]]


def _signature(series: list[Series]) -> list[tuple[str, int, Point | None]]:
    """Series only ever grow (ring buffers aside): length and last point tell a change."""
    return [
        (item.label, len(item.points), item.points[-1] if item.points else None) for item in series
    ]


def step_ticks(first: float, last: float, count: int) -> list[int]:
    """About `count` whole-number ticks at round steps (1, 2, 5 x 10^k), ends included."""
    low, high = int(first), round(last)
    if high <= low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    spacing = 1
    while spacing < raw:
        for factor in (2, 5, 10):
            if spacing * factor >= raw:
                spacing *= factor
                break
        else:
            spacing *= 10
    inner = range((low // spacing + 1) * spacing, high, spacing)
    ticks = [low, *(tick for tick in inner if min(tick - low, high - tick) >= spacing / 2), high]
    return ticks


def value_ticks(low: float, high: float, count: int) -> list[float]:
    """About `count` evenly spaced ticks at round values (1, 2, 5 x 10^k) within [low, high];
    at least two when the range has room for them."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    spacing = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * 0.999)
    while True:
        first = math.ceil(low / spacing - 1e-9)
        last = math.floor(high / spacing + 1e-9)
        if last - first >= 1 or spacing < (high - low) / 1000:
            return [index * spacing for index in range(first, last + 1)]
        # A round spacing wider than half the range leaves one tick: take the next finer one.
        mantissa = round(spacing / 10.0 ** math.floor(math.log10(spacing)))
        spacing *= 0.4 if mantissa == 5 else 0.5


def tick_labels(ticks: list[float]) -> list[str]:
    """Labels as short as the spacing allows: 10.5 / 9.5 / 8.5, or 1e-3 / 5e-4 for rates."""
    if not ticks:
        return []
    spacing = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(ticks[0]) or 1.0
    peak = max(abs(tick) for tick in ticks)
    if 0 < peak < 0.01:
        # Learning rates: 1e-3, 2.5e-4, as typed in a config, not a scaled axis.
        digits = max(0, math.floor(math.log10(peak)) - math.floor(math.log10(spacing)))
        return [_scientific(tick, digits) for tick in ticks]
    decimals = max(0, -math.floor(math.log10(spacing)))
    return [f"{tick:.{decimals}f}" for tick in ticks]


def _scientific(value: float, digits: int) -> str:
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.{digits}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


class MetricPlot(PlotextPlot):
    """One plot of one or more series against the step."""

    def __init__(
        self, title: str, *, empty_text: str = "waiting for the first step", id: str | None = None
    ) -> None:
        super().__init__(id=id, classes="metric-plot")
        self.plot_title = title
        self.empty_text = empty_text
        self.series: list[Series] = []

    def set_series(self, series: list[Series], title: str | None = None) -> None:
        """Show these series; nothing is redrawn (or sent to the terminal) if none changed."""
        title = self.plot_title if title is None else title
        if title == self.plot_title and _signature(series) == _signature(self.series):
            return
        self.series = series
        self.plot_title = title
        self.refresh()

    def render(self):
        drawn = [item for item in self.series if item.points]
        if not drawn:
            # No plot to build: just say what the plot will show.
            return Content.assemble((self.plot_title, "bold"), "\n", (self.empty_text, "italic"))
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.plot_title)
        width = max(self.size.width, 10)
        variables = self.app.theme_variables
        steps: list[float] = []
        for item in drawn:
            points = thin(item.points, width * 2)
            steps += [points[0][0], points[-1][0]]
            plt.plot(
                [x for x, _ in points],
                [y for _, y in points],
                label=item.label if len(drawn) > 1 else None,
                color=theme_colour(variables, item.colour_variable),
                marker="dot" if is_plain() else "hd",  # braille and block halves need UTF-8
            )
        ticks = step_ticks(min(steps), max(steps), max(width // 10, 2))
        plt.xticks(ticks, [str(tick) for tick in ticks])  # type: ignore[arg-type]  # ints do
        values = [y for item in drawn for _, y in item.points if math.isfinite(y)]
        if values:
            low, high = min(values), max(values)
            if high == low:  # a flat line: one tick at its value, in the middle
                low, high = low - (abs(low) or 1.0) * 0.1, high + (abs(high) or 1.0) * 0.1
            levels = value_ticks(low, high, max(self.size.height // 3, 3))
            # plotext places its own ticks at uneven fractions of the range: ours are round.
            plt.ylim(low, high)
            plt.yticks(levels, tick_labels(levels))
        return super().render()
