"""The Train screen's memory panel: how close the run is to the GPU's limit, and whether the
paged optimizer is spilling to host memory.

    GPU0 · 18.8 of 80.0 GiB free · H100 80GB HBM3      the device, free and total
    80 ───────────────────────── ━ used  61.2          memory over time from 0 to the
    40 ▗▄▄▄▞▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀ ━ rsv   58.0          total, and a legend holding the
     0 ▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄ ━ alloc 54.1          figures now (GiB)
       0s      1m      2m    3m  ━ paged  3.1
    util ▃▅▇██▇█ 97% · PCIe ▁▁▃▁▁ 1.2 GB/s             utilisation and PCIe sparklines
    2 other processes, 14.0 GiB · biggest: bob 12.0 GiB (python)     other jobs on the GPU
    ⚠ low memory · spilling ~0.8 GiB                    warnings, while they hold

Without a GPU it shows the host: RAM used and this process's RSS (scaled to the data), free RAM
and CPU %. The owner calls `show()` with a `MemoryView` at its own capped rate (the Train
screen's plot throttle) and `announce_warnings()` when the run has news, which notifies once
per episode.

The sparklines are drawn here rather than with Textual's `Sparkline`, which scales to the
data's own minimum and maximum: a GPU at 96-98 % would look like one going from idle to full.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Static
from textual_plotext import PlotextPlot

from studio.formatting import GIB, gib
from studio.telemetry.memory_warnings import PAGED_SPILL
from studio.telemetry.snapshots import GpuProcess, GpuSnapshot, TelemetrySnapshot
from studio.ui.chrome.glyphs import is_plain
from studio.ui.runs.monitor import (
    MEMORY_ALLOCATED,
    MEMORY_PAGED,
    MEMORY_RAM_USED,
    MEMORY_RESERVED,
    MEMORY_RSS,
    MEMORY_SPILLED,
    MEMORY_USED,
    MemoryView,
    RunMonitor,
)
from studio.ui.widgets.metric_plot import thin

Point = tuple[float, float]
BARS = "▁▂▃▄▅▆▇█"
PCIE_SCALE_FLOOR = 1e9  # bytes/s: the PCIe sparkline's top is at least this, so idle is flat
WIDE_LEGEND = 60  # panel columns from which the legend spells names out
TALL_WARNINGS = 12  # panel rows from which each warning has a line of its own
NOTIFY_TIMEOUT = 10.0


@dataclass(frozen=True)
class SeriesStyle:
    """How one memory series is labelled and coloured."""

    short: str
    long: str
    colours: tuple[str, ...]  # theme variables, the first one the theme defines wins


LINES = {
    MEMORY_USED: SeriesStyle("used", "NVML used", ("plot-memory-used",)),
    MEMORY_RESERVED: SeriesStyle("rsv", "torch reserved", ("plot-memory-reserved",)),
    MEMORY_ALLOCATED: SeriesStyle("alloc", "torch allocated", ("plot-memory-allocated",)),
    MEMORY_PAGED: SeriesStyle("paged", "paged resident", ("plot-memory-paged",)),
    MEMORY_SPILLED: SeriesStyle("spill", "paged spilled", ("plot-memory-spilled",)),
    MEMORY_RAM_USED: SeriesStyle("RAM", "RAM used", ("plot-memory-used",)),
    MEMORY_RSS: SeriesStyle("RSS", "process RSS", ("plot-memory-allocated",)),
}
_FALLBACK_COLOUR = "#808080"


class MemoryPlot(PlotextPlot):
    """Memory series against seconds since the run's first sample, from 0 to the limit."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.series: dict[str, list[Point]] = {}
        self.limit_bytes: int | None = None
        self.empty_text = "waiting for telemetry"

    def set_data(self, series: dict[str, list[Point]], limit_bytes: int | None) -> None:
        self.series, self.limit_bytes = series, limit_bytes
        self.refresh()

    def render(self):
        drawn = {name: points for name, points in self.series.items() if points}
        if not drawn:
            return Content.styled(self.empty_text, "italic $foreground-muted")
        peak = max(y for points in drawn.values() for _, y in points)
        top = (self.limit_bytes or peak * 1.25 or GIB) / GIB
        top = max(top, peak / GIB)
        width = max(self.size.width, 10)
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.frame(False)
        variables = self.app.theme_variables
        first = min(points[0][0] for points in drawn.values())
        last = max(points[-1][0] for points in drawn.values())
        if self.limit_bytes:
            plt.horizontal_line(self.limit_bytes / GIB, color=_rgb(variables, ("border",)))
        for name, points in drawn.items():
            colour = _rgb(variables, LINES[name].colours)
            # Spill is drawn only where there is some: a line along 0 would hide the others.
            stretches = nonzero_runs(points) if name == MEMORY_SPILLED else [points]
            for stretch in stretches:
                shown = thin(stretch, width * 2)
                plt.plot(
                    [x for x, _ in shown],
                    [y / GIB for _, y in shown],
                    color=colour,
                    marker="dot" if is_plain() else "hd",
                )
        plt.ylim(0, top)
        decimals = 0 if top >= 10 else 1
        # The unit on the top tick: the panel's numbers are GiB throughout.
        top_label = f"{top:.{decimals}f}G"
        plt.yticks([0, top / 2, top], ["0", f"{top / 2:.{decimals}f}", top_label])
        plt.xlim(first, max(last, first + 1))
        ticks = time_ticks(first, last, max(width // 9, 2))
        plt.xticks(ticks, [clock(tick) for tick in ticks])
        return super().render()


class PanelText(Static):
    """Text in the panel: `memory-line` ones are one line high, the others fit their text."""

    def __init__(self, *, id: str) -> None:
        one_line = id not in ("memory-legend", "memory-warning")
        super().__init__("", id=id, classes="memory-line" if one_line else "")
        self.shown: tuple[str, tuple] | None = None
        """What the text shows (plain text and styles), to skip redraws that change nothing."""

    def show(self, text: Content | None) -> None:
        key = (text.plain, tuple(text.spans)) if text else None
        if key == self.shown and self.shown is not None:
            return
        lines_before = self.shown[0].count("\n") if self.shown else -1
        self.shown = key
        self.set_class(not text, "-empty")  # showing or hiding a line relayouts the panel
        # A relayout of the whole screen costs tens of milliseconds of the trainer's GIL:
        # only when the text's height changes, never for one-line texts.
        lines_now = key[0].count("\n") if key else -1
        relayout = not self.has_class("memory-line") and lines_now != lines_before
        self.update(text or "", layout=relayout)


class MemoryPanel(Vertical):
    """Memory, utilisation and PCIe of the run's GPU (or of the host), with warnings."""

    DEFAULT_CSS = """
    MemoryPanel {
        height: 1fr;
        width: 1fr;
        background: $surface;
    }
    MemoryPanel > .memory-line {
        height: 1;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    MemoryPanel > #memory-title {
        text-style: bold;
    }
    MemoryPanel > #memory-body {
        height: 1fr;
    }
    MemoryPanel #memory-plot {
        width: 1fr;
        height: 1fr;
    }
    MemoryPanel #memory-legend {
        width: auto;
        height: auto;
        padding: 0 1;
    }
    MemoryPanel > #memory-others {
        color: $foreground-muted;
    }
    MemoryPanel > #memory-warning {
        height: auto;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        max-height: 2;
        color: $text-warning;
        background: $warning-muted;
    }
    MemoryPanel .-empty {
        display: none;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.data: MemoryView | None = None
        """The last view shown (redrawn from on a resize)."""

    def compose(self) -> ComposeResult:
        yield PanelText(id="memory-title")
        with Horizontal(id="memory-body"):
            yield MemoryPlot(id="memory-plot")
            yield PanelText(id="memory-legend")
        yield PanelText(id="memory-gauges")
        yield PanelText(id="memory-others")
        yield PanelText(id="memory-warning")

    def on_mount(self) -> None:
        self.show(None)

    def on_resize(self) -> None:
        self._fill(self.data)  # the legend's names and the sparklines' widths follow the size

    def show(self, data: MemoryView | None) -> None:
        """Draw this view; nothing is sent to the terminal when no sample arrived since."""
        previous = self.data
        if (
            data is not None
            and previous is not None
            and data.snapshot is previous.snapshot
            and data.version == previous.version
        ):
            return
        self.data = data
        self._fill(data)

    def announce_warnings(self, monitor: RunMonitor) -> None:
        """Notify each warning that started since the last call: once per episode."""
        for warning in monitor.take_new_warnings():
            self.app.notify(
                warning.message,
                title="GPU memory",
                severity="warning",
                timeout=NOTIFY_TIMEOUT,
                markup=False,
            )

    # ---------------------------------------------------------------- drawing

    def _fill(self, data: MemoryView | None) -> None:
        if not self.is_mounted:
            return
        width = max(self.size.width - 2, 10)
        plot = self.query_one(MemoryPlot)
        snapshot = data.snapshot if data is not None else None
        if data is None or snapshot is None:
            plot.empty_text = "starts with a run" if data is None else "waiting for telemetry"
            plot.set_data({}, None)
            self._set("#memory-title", Content("memory"))
            for name in ("#memory-legend", "#memory-gauges", "#memory-others", "#memory-warning"):
                self._set(name, None)
            return
        # A GPU's plot goes up to its total: the headroom is what it is there to show. The
        # host's RAM is rarely the limit of a run without a GPU, so its plot fits the data.
        plot.set_data(data.series, data.limit_bytes if data.gpu_index is not None else None)
        gpu = snapshot.gpu(data.gpu_index) if data.gpu_index is not None else None
        self._set("#memory-title", title_text(snapshot, gpu, width))
        self._set("#memory-legend", self._legend(data, wide=self.size.width >= WIDE_LEGEND))
        self._set("#memory-gauges", gauges_text(data, gpu, width))
        self._set("#memory-others", others_text(gpu) if gpu is not None else None)
        self._set("#memory-warning", warnings_text(data, self.size.height >= TALL_WARNINGS))

    def _legend(self, data: MemoryView, wide: bool) -> Content | None:
        rows = [(name, points[-1][1]) for name, points in data.series.items() if points]
        if not rows:
            return None
        variables = self.app.theme_variables
        labels = [LINES[name].long if wide else LINES[name].short for name, _ in rows]
        label_width = max(len(label) for label in labels)
        values = [f"{gib(value)} GiB" for _, value in rows]
        value_width = max(len(value) for value in values)
        lines = []
        for (name, _), label, value in zip(rows, labels, values, strict=True):
            colour = _variable(variables, LINES[name].colours)
            lines.append(
                Content.assemble(
                    ("━ ", colour),
                    (label.ljust(label_width), colour),
                    " " + value.rjust(value_width),
                )
            )
        return Content("\n").join(lines)

    def _set(self, selector: str, text: Content | None) -> None:
        self.query_one(selector, PanelText).show(text)


# -------------------------------------------------------------------- texts


def title_text(snapshot: TelemetrySnapshot, gpu: GpuSnapshot | None, width: int) -> Content:
    """`GPU0 · 18.8 of 80.0 GiB free · H100 80GB HBM3`, as much of it as fits in `width`."""
    if gpu is None:
        host = snapshot.host
        free = host.ram_available_bytes
        parts = ["no GPU — showing host memory"]
        if host.ram_total_bytes:
            parts.append(f"{gib(free)} of {gib(host.ram_total_bytes)} GiB RAM free")
        return Content(fit(parts, width))
    parts = [f"GPU{gpu.index}"]
    free, total = gpu.free_bytes, gpu.memory_total_bytes
    if total is not None:
        parts.append(f"{gib(free)} of {gib(total)} GiB free")
    if gpu.name:
        parts.append(gpu.name.removeprefix("NVIDIA ").strip())
    return Content(fit(parts, width))


def fit(parts: list[str], width: int, separator: str = " · ") -> str:
    """The first part, then as many of the next ones (in order) as fit in `width`."""
    text = parts[0]
    for part in parts[1:]:
        if len(text) + len(separator) + len(part) > width:
            break
        text += separator + part
    return text


def warnings_text(data: MemoryView, tall: bool) -> Content | None:
    """One line per warning in a tall panel; else one line, the warnings' tags when several."""
    warnings = data.warnings
    if not warnings:
        return None
    if tall:
        return Content("\n").join(Content("⚠ " + item.summary) for item in warnings)
    if len(warnings) == 1:
        return Content("⚠ " + warnings[0].summary)
    return Content("⚠ " + " · ".join(item.tag for item in warnings))


def gauges_text(data: MemoryView, gpu: GpuSnapshot | None, width: int) -> Content:
    """`util ▃▅▇█ 97% · PCIe ▁▃▁ 1.2 GB/s`; `CPU ▂▃▂ 37%` without a GPU."""
    label = "util" if gpu is not None else "CPU"
    now = f" {data.utilisation[-1]:.0f}%" if data.utilisation else " ?%"
    has_pcie = gpu is not None and bool(data.pcie)
    pcie_now = f" {rate(data.pcie[-1])}" if has_pcie else ""
    fixed = len(label) + 1 + len(now) + (len(" · PCIe ") + len(pcie_now) if has_pcie else 0)
    bar_width = max((width - fixed) // (2 if has_pcie else 1), 3)
    parts: list[str | tuple[str, str]] = [
        f"{label} ",
        (bars(data.utilisation, bar_width, 100.0), "$primary"),
        now,
    ]
    if has_pcie:
        spilling = any(item.kind == PAGED_SPILL for item in data.warnings)
        top = max(max(data.pcie[-bar_width:]), PCIE_SCALE_FLOOR)
        parts += [
            " · PCIe ",
            (bars(data.pcie, bar_width, top), "$warning" if spilling else "$secondary"),
            pcie_now,
        ]
    return Content.assemble(*parts)


def others_text(gpu: GpuSnapshot, own_pid: int | None = None) -> Content | None:
    """Other processes holding memory on the GPU: how many, and the biggest with its user."""
    own_pid = os.getpid() if own_pid is None else own_pid
    others = [process for process in gpu.processes or () if process.pid != own_pid]
    if not others:
        return None
    biggest = max(others, key=lambda process: process.used_memory_bytes or 0)
    if len(others) == 1:
        return Content(f"1 other process: {_describe(biggest)}")
    text = f"{len(others)} other processes"
    known = [process.used_memory_bytes for process in others if process.used_memory_bytes]
    if known:
        text += f", {gib(sum(known))} GiB"
    return Content(f"{text} · biggest: {_describe(biggest)}")


def _describe(process: GpuProcess) -> str:
    who = process.user or f"pid {process.pid}"
    text = who
    if process.used_memory_bytes:
        text += f" {gib(process.used_memory_bytes)} GiB"
    if process.command:
        text += f" ({os.path.basename(process.command.split()[0])})"
    return text


def nonzero_runs(points: list[Point]) -> list[list[Point]]:
    """The stretches where y > 0, each with the zero just before and after it."""
    runs: list[list[Point]] = []
    current: list[Point] = []
    for index, point in enumerate(points):
        if point[1] > 0:
            if not current and index > 0:
                current.append(points[index - 1])
            current.append(point)
        elif current:
            runs.append([*current, point])
            current = []
    if current:
        runs.append(current)
    return runs


def bars(values: list[float], width: int, top: float) -> str:
    """The last `width` values as one-line bars from 0 to `top`, right-aligned."""
    if width <= 0:
        return ""
    recent = values[-width:]
    scale = len(BARS) / top if top > 0 else 0.0
    text = "".join(BARS[min(max(int(value * scale), 0), len(BARS) - 1)] for value in recent)
    return text.rjust(width)


def rate(bytes_per_second: float) -> str:
    """PCIe throughput in decimal units, as link speeds are quoted: `1.2 GB/s`, `340 MB/s`."""
    for factor, unit in ((1e9, "GB/s"), (1e6, "MB/s"), (1e3, "kB/s")):
        if bytes_per_second >= factor:
            value = bytes_per_second / factor
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{bytes_per_second:.0f} B/s"


TICK_SPACINGS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)


def time_ticks(first: float, last: float, count: int) -> list[float]:
    """About `count` ticks at round times (10 s, 1 min, 5 min, ...) between first and last."""
    span = max(last - first, 1.0)
    wanted = span / max(count - 1, 1)
    # The widest round spacing that still gives `count` ticks (never fewer).
    spacing = max((item for item in TICK_SPACINGS if item <= wanted), default=1)
    start = -(-first // spacing) * spacing  # the first multiple of spacing at or after first
    ticks = []
    tick = start
    while tick <= last + 1e-9:
        ticks.append(float(tick))
        tick += spacing
    return ticks or [float(first)]


def clock(seconds: float) -> str:
    """Elapsed time for an axis: `45s`, `2m`, `2m30`, `1h`, `1h05`."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest:02d}"
    hours, rest = divmod(whole, 3600)
    return f"{hours}h" if rest < 60 else f"{hours}h{rest // 60:02d}"


def _variable(variables: dict[str, str], names: tuple[str, ...]) -> str:
    """The first of these theme variables the theme defines, as a `$name` style."""
    for name in names:
        if variables.get(name):
            return f"${name}"
    return _FALLBACK_COLOUR


def _rgb(variables: dict[str, str], names: tuple[str, ...]) -> tuple[int, int, int]:
    from textual.color import Color, ColorParseError

    for name in names:
        value = variables.get(name)
        if value:
            try:
                return Color.parse(value).rgb
            except ColorParseError:
                continue
    return Color.parse(_FALLBACK_COLOUR).rgb
