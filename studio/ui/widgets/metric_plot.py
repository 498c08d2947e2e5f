"""A line plot of metrics over training steps (plotext through textual-plotext).

The owner sets the series and calls `refresh()` at a capped rate; the plot is built only when
Textual renders it. Long series are thinned to about two points per column first, so drawing
cost stays flat however long the run is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from textual.content import Content
from textual_plotext import PlotextPlot

from studio.ui.themes import theme_colour

Point = tuple[float, float]


@dataclass(frozen=True)
class Series:
    label: str
    points: list[Point]
    colour_variable: str  # one of studio.ui.themes.APP_VARIABLES


def thin(points: list[Point], limit: int) -> list[Point]:
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


def small_number_scale(values: list[float]) -> tuple[float, str]:
    """(factor, label) that brings tiny values such as learning rates to readable ticks."""
    peak = max((abs(value) for value in values), default=0.0)
    if peak == 0.0 or peak >= 0.1:
        return 1.0, ""
    exponent = math.ceil(-math.log10(peak))
    return 10.0**exponent, f" (×1e-{exponent})"


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

    def render(self):  # type: ignore[override]
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
            )
        ticks = step_ticks(min(steps), max(steps), max(width // 10, 2))
        plt.xticks(ticks, [str(tick) for tick in ticks])
        return super().render()
