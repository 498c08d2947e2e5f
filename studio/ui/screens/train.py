"""Train: start, pause, resume, stop and save-now; live loss, learning rate and memory plots,
step / epoch / tokens per second / elapsed / ETA, and the run's log.

The trainer runs on the app's thread worker; this screen only reads the `RunMonitor`. Stats
are redrawn at most once a second and plots once every two seconds (only those whose data
changed), and nothing is drawn while the screen is not showing, so the update stream over
SSH stays small whatever the step rate.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.content import Content
from textual.widgets import Button, Static

from studio.engine.events import RunState, SampleGenerations
from studio.formatting import (
    format_duration,
    format_loss,
    format_rate,
)
from studio.terminal_text import printable
from studio.ui.chrome.glyphs import glyph
from studio.ui.chrome.throttle import Throttle
from studio.ui.runs.monitor import MonitorView, RunMonitor
from studio.ui.screens.base import StudioScreen
from studio.ui.widgets.device_picker import DevicePicker
from studio.ui.widgets.memory_panel import MemoryPanel
from studio.ui.widgets.metric_plot import MetricPlot, Series
from studio.ui.widgets.wrapping_log import WrappingLog

STATS_INTERVAL = 1.0
PLOTS_INTERVAL = 2.0
ACTIVE = (RunState.PREPARING, RunState.RUNNING, RunState.PAUSED, RunState.STOPPING)


class TrainScreen(StudioScreen):
    MODE = "train"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "start", "Start"),
        Binding("p", "pause_or_resume", "Pause/resume"),
        Binding("x", "stop", "Stop"),
        Binding("c", "save_now", "Save now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._stats = Throttle(self, STATS_INTERVAL, self._draw_stats)
        self._plots = Throttle(self, PLOTS_INTERVAL, self._draw_plots)
        self._monitor: RunMonitor | None = None
        self._log_seen = 0
        self._plot_version = -1
        self._footer_state: RunState | None = None
        self._samples_shown = ""

    def compose_body(self) -> ComposeResult:
        yield Static("", id="train-stats")
        with Horizontal(id="train-buttons"):
            yield Button("Start s", id="start", compact=True)
            yield Button("Pause p", id="pause", compact=True)
            yield Button("Stop x", id="stop", compact=True)
            yield Button("Save now c", id="save-now", compact=True)
        yield Static("", id="run-error", classes="hidden")
        yield DevicePicker(id="device-picker")
        with Grid(id="train-grid"):
            yield MetricPlot("loss", id="loss-plot")
            yield MetricPlot("learning rate", id="lr-plot")
            yield MemoryPanel(id="memory-panel")
            with Vertical(id="train-log-cell"):
                yield Static("", id="train-samples", classes="hidden", markup=False)
                yield WrappingLog(id="train-log", max_lines=1000)

    def on_mount(self) -> None:
        self.studio_app.runs.changed.subscribe(self, self._run_changed)
        self.studio_app.config_changed.subscribe(self, lambda _config: self._stats.request())
        self._monitor = self.studio_app.runs.monitor
        self._stats.flush()
        self._plots.flush()

    def on_screen_resume(self) -> None:
        # Nothing is drawn while hidden; catch up at once when shown again.
        if self.is_mounted:
            self.redraw_now()

    def redraw_now(self) -> None:
        super().redraw_now()
        self._stats.flush()
        self._plots.flush()

    def _run_changed(self, monitor: RunMonitor) -> None:
        if monitor is not self._monitor:
            self._monitor = monitor
            self._log_seen = 0
            self._plot_version = -1
            self.query_one("#train-log", WrappingLog).clear()
        # Memory warnings are told once per episode, whichever screen is showing.
        self.query_one(MemoryPanel).announce_warnings(monitor)
        if self.is_current:
            self._stats.request()
            self._plots.request()

    # ---------------------------------------------------------------- drawing

    def _view(self) -> MonitorView | None:
        return None if self._monitor is None else self._monitor.view(self._log_seen)

    def _draw_stats(self) -> None:
        view = self._view()
        # Fixed height: a repaint, never a relayout of the screen (cheap at any size).
        self.query_one("#train-stats", Static).update(
            stats_text(view, self.studio_app), layout=False
        )
        state = view.state if view else None
        active = state in ACTIVE
        if state != self._footer_state:
            self._footer_state = state
            self.refresh_bindings()
        self.query_one("#start", Button).disabled = active
        pause = self.query_one("#pause", Button)
        pause.disabled = not active or state is RunState.STOPPING
        pause.label = "Resume p" if state is RunState.PAUSED else "Pause p"
        self.query_one("#stop", Button).disabled = not active or state is RunState.STOPPING
        self.query_one("#save-now", Button).disabled = state is not RunState.RUNNING
        error = self.query_one("#run-error", Static)
        if view is not None and view.error is not None:
            error.update(error_text(view))
            error.remove_class("hidden")
        else:
            error.add_class("hidden")
        samples = self.query_one("#train-samples", Static)
        text = samples_text(view.samples) if view is not None and view.samples else ""
        if text != self._samples_shown:
            # Its height follows its text: a relayout, but only when new answers come.
            self._samples_shown = text
            samples.update(text)
            samples.set_class(not text, "hidden")
        if view is not None and view.new_log_lines:
            log = self.query_one("#train-log", WrappingLog)
            for line in view.new_log_lines:
                prefix = f"{line.level}: " if line.level in ("warning", "error") else ""
                log.add_line(printable(prefix + line.text))
            self._log_seen = view.log_total

    def _draw_plots(self) -> None:
        view = self._view()
        if view is not None and view.version == self._plot_version:
            return
        self._plot_version = view.version if view else -1
        loss = self.query_one("#loss-plot", MetricPlot)
        rate = self.query_one("#lr-plot", MetricPlot)
        memory = self.query_one(MemoryPanel)
        if view is None or self._monitor is None:
            for plot in (loss, rate):
                plot.set_series([])
            memory.show(None)
            return
        loss.set_series(
            [
                Series("train", view.train_loss, "plot-train-loss"),
                Series("eval", view.eval_loss, "plot-eval-loss"),
            ]
        )
        rate.set_series([Series("learning rate", view.learning_rate, "plot-learning-rate")])
        memory.show(self._monitor.memory_view())

    # ---------------------------------------------------------------- actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only the keys that apply now are in the footer (and the ? overlay)."""
        monitor = self.studio_app.runs.monitor
        state = monitor.state if monitor is not None else None
        active = state in ACTIVE
        if action == "start":
            return not active
        if action in ("pause_or_resume", "stop"):
            return active and state is not RunState.STOPPING
        if action == "save_now":
            return state is RunState.RUNNING
        return True

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        self.studio_app.runs.start_training()

    @on(Button.Pressed, "#pause")
    def action_pause_or_resume(self) -> None:
        monitor = self.studio_app.runs.monitor
        if monitor is not None and monitor.state is RunState.PAUSED:
            self.studio_app.runs.resume_training()
        else:
            self.studio_app.runs.pause_training()

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        self.studio_app.runs.stop_training()

    @on(Button.Pressed, "#save-now")
    def action_save_now(self) -> None:
        self.studio_app.runs.save_checkpoint_now()


STATE_STYLES = {
    RunState.PREPARING: "$success",
    RunState.RUNNING: "$success",
    RunState.PAUSED: "$warning",
    RunState.STOPPING: "$warning",
    RunState.FAILED: "$error",
}


def stats_text(view: MonitorView | None, app) -> Content:  # app: StudioApp
    """Two lines: state, progress and loss; speed, time, memory."""
    config = app.studio.config
    if view is None or view.state is None:
        return Content.assemble(
            ("No run yet. ", "bold"),
            f"s starts training {config.model.source} · {config.method.name} · "
            f"{config.data.path} (change it on the Config screen, key 2)",
        )
    state = view.state
    latest = view.latest
    parts: list[str | tuple[str, str]] = [(state.value, f"bold {STATE_STYLES.get(state, '')}")]
    if latest is not None:
        share = latest.step / latest.max_steps if latest.max_steps else 0.0
        parts.append(f"  step {latest.step}/{latest.max_steps} ")
        parts.append((_bar(share, 10), "$primary"))
        parts.append(f" {share:.0%}  loss {format_loss(latest.loss)}")
        if view.eval_loss:
            parts.append(f"  eval {format_loss(view.eval_loss[-1][1])}")
        rate = latest.tokens_per_second
        parts.append(f"\nepoch {latest.epoch:.2f}  lr {format_rate(latest.learning_rate)}  ")
        parts.append(f"{rate:,.0f} tok/s" if rate else "- tok/s")
        if view.finished is not None and state in (RunState.FINISHED, RunState.STOPPED):
            # The whole run (loading and saving too), as the Runs screen shows it.
            parts.append(f"  took {format_duration(view.finished.duration_seconds)}")
        else:
            parts.append(f"  elapsed {format_duration(latest.elapsed_seconds)}")
            parts.append(f"  ETA {format_duration(latest.eta_seconds)}")
    else:
        parts.append(f"  {view.state_detail}\n")
    if view.finished is not None and state in (RunState.FINISHED, RunState.STOPPED):
        where = app.services.display(view.finished.adapter_dir or view.finished.run_dir)
        parts.append(f"\nsaved to {where}; chat with it on the Chat screen (key 4)")
    elif view.telemetry is not None:
        from studio.telemetry.status_line import format_memory_status

        parts.append(f"\n{format_memory_status(view.telemetry)}")
    return Content.assemble(*parts)


def samples_text(samples: tuple[SampleGenerations, ...]) -> str:
    """The sample prompts with the first and the latest answers, one line each."""
    first, latest = samples[0], samples[-1]
    lines = [
        f"samples at step {latest.step}" + (f" (vs {first.step})" if first is not latest else "")
    ]
    for index, answer in enumerate(latest.answers):
        lines.append(f"{glyph('prompt')} {_one_line(answer.prompt)[-60:]}")
        lines.append(f"  {latest.step}: {_one_line(answer.reply) or '(nothing)'}")
        if first is not latest and index < len(first.answers):
            lines.append(f"  {first.step}: {_one_line(first.answers[index].reply) or '(nothing)'}")
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def error_text(view: MonitorView) -> Content:
    error = view.error
    assert error is not None
    parts: list[str | tuple[str, str]] = [
        (printable(f"{glyph('cross')} {error.kind}: {error.message}"), "bold")
    ]
    for advice in error.advice:
        parts.append(printable(f"\n  try: {advice}"))
    return Content.assemble(*parts)


def _bar(share: float, width: int) -> str:
    filled = round(min(max(share, 0.0), 1.0) * width)
    return glyph("bar-full") * filled + glyph("bar-empty") * (width - filled)
