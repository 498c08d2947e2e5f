"""One run opened (its curves, config and log), and runs compared (loss curves on one plot, the
config differences as a table and as a diff).

Both read only the run folders (`studio.runs.catalog.read_curves`, `studio.runs.compare`). The
run view closes with the name of an action (resume, export, ...) that the Runs screen runs on
that run, so every action has one implementation.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Label, Static, TabbedContent, TabPane

from studio.formatting import format_bytes, format_duration, format_loss
from studio.runs.catalog import RunSummary, read_curves
from studio.terminal_text import printable
from studio.ui.chrome.glyphs import glyph
from studio.ui.runs.actions import run_action_bindings
from studio.ui.widgets.metric_plot import MetricPlot, Series
from studio.ui.widgets.run_table import short_name, status_text, steps_text

LOG_TAIL_LINES = 400
# The plot colours of the theme, one per compared run (they repeat after six runs).
RUN_COLOURS = (
    "plot-train-loss",
    "plot-eval-loss",
    "plot-learning-rate",
    "plot-memory-used",
    "plot-memory-allocated",
    "plot-memory-reserved",
)
LABEL_LENGTH = 24


class RunDetailScreen(ModalScreen[str | None]):
    """One run: summary, loss and learning-rate curves, config.yaml and the end of log.txt.
    Closes with the action the user picked (run by the Runs screen) or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close"),
        *run_action_bindings(
            footer=("resume", "export", "rerun", "delete", "triage"),
            action=lambda name: f"pick({name!r})",
        ),
        Binding("left", "tab(-1)", "Previous tab", show=False),
        Binding("right", "tab(1)", "Next tab", show=False),
    ]

    def __init__(self, run: RunSummary) -> None:
        super().__init__()
        self.run_summary = run

    def compose(self) -> ComposeResult:
        run = self.run_summary
        with Vertical(id="run-view"):
            yield Label(f"{run.name}  ·  {status_text(run)}", id="run-view-title", markup=False)
            yield Static(run_summary_text(run), id="run-view-summary")
            with TabbedContent(id="run-view-tabs"):
                with TabPane("Loss", id="tab-loss"):
                    yield MetricPlot("loss", empty_text="no loss was logged", id="run-loss")
                with TabPane("Learning rate", id="tab-lr"):
                    yield MetricPlot("learning rate", empty_text="not logged", id="run-lr")
                with TabPane("Samples", id="tab-samples"), VerticalScroll(classes="run-text"):
                    yield Static(samples_by_prompt(run.path), id="run-samples", markup=False)
                with TabPane("Config", id="tab-config"), VerticalScroll(classes="run-text"):
                    yield Static(read_text(run.path / "config.yaml"), id="run-config", markup=False)
                with (
                    TabPane("Log", id="tab-log"),
                    VerticalScroll(classes="run-text", id="log-scroll"),
                ):
                    yield Static(log_tail(run.path / "log.txt"), id="run-log", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        curves = read_curves(self.run_summary.path)
        self.query_one("#run-loss", MetricPlot).set_series(
            [
                Series("train", curves.train_loss, "plot-train-loss"),
                Series("eval", curves.eval_loss, "plot-eval-loss"),
            ]
        )
        self.query_one("#run-lr", MetricPlot).set_series(
            [Series("learning rate", curves.learning_rate, "plot-learning-rate")],
        )
        self.query_one("#log-scroll", VerticalScroll).scroll_end(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_pick(self, action: str) -> None:
        self.dismiss(action)

    def action_tab(self, offset: int) -> None:
        tabs = self.query_one("#run-view-tabs", TabbedContent)
        panes = [pane.id for pane in tabs.query(TabPane) if pane.id]  # every pane has one
        index = panes.index(tabs.active) if tabs.active in panes else 0
        tabs.active = panes[(index + offset) % len(panes)] or panes[0]


class CompareScreen(ModalScreen[None]):
    """Two or more runs: their loss curves overlaid, and how their configs differ."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close"),
        Binding("v", "toggle_eval", "Eval loss"),
        Binding("left", "tab(-1)", "Previous tab", show=False),
        Binding("right", "tab(1)", "Next tab", show=False),
    ]

    def __init__(self, runs: list[Path]) -> None:
        from studio.runs.compare import compare_runs

        super().__init__()
        self.comparison = compare_runs(runs)
        self.show_eval = False

    def compose(self) -> ComposeResult:
        names = [run.name for run in self.comparison.runs]
        with Vertical(id="run-view"):
            yield Label(f"Compare {len(names)} runs", id="run-view-title")
            yield Static(legend(names), id="run-view-summary")
            with TabbedContent(id="run-view-tabs"):
                with TabPane("Loss", id="tab-loss"):
                    yield MetricPlot("train loss", empty_text="no loss logged", id="compare-loss")
                with TabPane("Differences", id="tab-differences"):
                    yield DataTable(
                        id="compare-table", cursor_type="row", zebra_stripes=True, fixed_columns=1
                    )
                with TabPane("Diff", id="tab-diff"), VerticalScroll(classes="run-text"):
                    yield Static(self._diff_text(), id="compare-diff")
        yield Footer()

    def on_mount(self) -> None:
        self._draw_curves()
        table = self.query_one("#compare-table", DataTable)
        table.add_column("config key", key="key")
        for index, run in enumerate(self.comparison.runs, 1):
            table.add_column(
                Text(f"{index} {short_name(printable(run.name), LABEL_LENGTH - 2)}"),
                key=str(index),
            )
        for difference in self.comparison.differences:
            table.add_row(
                Text(printable(difference.key)),
                *(Text(printable(v)) for v in difference.values),
            )
        if not self.comparison.differences:
            table.add_row(Text("the configs are the same"), *("" for _ in self.comparison.runs))

    def _draw_curves(self) -> None:
        series = []
        for index, (name, curves) in enumerate(self.comparison.curves.items()):
            colour = RUN_COLOURS[index % len(RUN_COLOURS)]
            label = f"{index + 1} {short_name(name, LABEL_LENGTH - 2)}"
            series.append(Series(label, curves.train_loss, colour))
            if self.show_eval and curves.eval_loss:
                series.append(Series(f"{index + 1} eval", curves.eval_loss, colour))
        title = "train and eval loss" if self.show_eval else "train loss"
        self.query_one("#compare-loss", MetricPlot).set_series(series, title=title)

    def _diff_text(self) -> Content:
        from studio.runs.compare import config_unified_diff

        first, *others = self.comparison.runs
        parts: list[str | tuple[str, str]] = []
        for other in others:
            diff = config_unified_diff(first, other)
            if not diff:
                parts.append(f"{first.name} and {other.name}: the same config\n\n")
                continue
            for line in diff.splitlines():
                style = ""
                if line.startswith(("+++", "---")):
                    style = "bold"
                elif line.startswith("+"):
                    style = "$success"
                elif line.startswith("-"):
                    style = "$error"
                elif line.startswith("@@"):
                    style = "$accent"
                parts.append((line + "\n", style) if style else line + "\n")
            parts.append("\n")
        return Content.assemble(*parts)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_toggle_eval(self) -> None:
        if not self.show_eval and not any(c.eval_loss for c in self.comparison.curves.values()):
            self.notify(
                "none of these runs measured an eval loss; give a run an eval split "
                "(data.eval_fraction or data.eval_path on Config) to compare one",
                title="No eval loss",
                severity="warning",
                markup=False,
            )
            return
        self.show_eval = not self.show_eval
        self._draw_curves()

    def action_tab(self, offset: int) -> None:
        tabs = self.query_one("#run-view-tabs", TabbedContent)
        panes = [pane.id for pane in tabs.query(TabPane) if pane.id]  # every pane has one
        index = panes.index(tabs.active) if tabs.active in panes else 0
        tabs.active = panes[(index + offset) % len(panes)] or panes[0]


def samples_by_prompt(run: Path) -> str:
    """The sample prompts, each with its answer at every step it was asked: how the answers
    changed from checkpoint to checkpoint (studio.engine.samples)."""
    from studio.engine.samples import read_samples

    samples = read_samples(run)
    if not samples:
        return "no samples in this run (training.sample_steps was 0, or it is older)"
    prompts: dict[str, list[tuple[int, str]]] = {}
    for sample in samples:
        for answer in sample.answers:
            prompts.setdefault(answer.prompt, []).append((sample.step, answer.reply))
    lines: list[str] = []
    for prompt, answers in prompts.items():
        lines.append(f"{glyph('prompt')} {' '.join(prompt.split())}")
        width = len(str(answers[-1][0]))
        lines += [f"  step {step:>{width}}: {' '.join(reply.split())}" for step, reply in answers]
        lines.append("")
    return "\n".join(lines).rstrip()


def legend(names: list[str]) -> Content:
    parts: list[str | tuple[str, str]] = []
    for index, name in enumerate(names, 1):
        colour = RUN_COLOURS[(index - 1) % len(RUN_COLOURS)]
        parts.append((f"{index} ", f"bold ${colour}"))
        parts.append(name + ("  " if index < len(names) else ""))
    return Content.assemble(*parts)


def run_summary_text(run: RunSummary) -> Content:
    lines = [
        f"{run.model} · {run.method} · {run.training_type} · started {run.date}",
        f"step {steps_text(run)} · loss {format_loss(run.final_loss)} "
        f"(best {format_loss(run.best_loss)}"
        + (f", best eval {format_loss(run.best_eval_loss)}" if run.best_eval_loss else "")
        + ")"
        + (f" · {format_duration(run.duration_seconds)}" if run.duration_seconds else ""),
        f"{run.checkpoints} checkpoint(s)"
        + (f", newest step {run.last_checkpoint}" if run.last_checkpoint else "")
        + (f" · adapter {format_bytes(run.adapter_bytes)}" if run.adapter_bytes else "")
        + f" · {run.path}",
    ]
    parts: list[str | tuple[str, str]] = ["\n".join(lines)]
    if run.error_kind:
        message = f": {run.error_message}" if run.error_message else ""
        parts.append((f"\n✗ {run.error_kind}{message}", "$error"))
    return Content.assemble(*parts)


# The log's tail is read from at most this many bytes at its end: a long run's log can be
# large, and it is read on the UI thread.
LOG_TAIL_BYTES = 64 * 1024


def read_text(path: Path, last_bytes: int | None = None) -> str:
    """The file's text (its last `last_bytes` only, when given). Bytes that are not UTF-8 —
    native libraries write to a detached run's log too — show as U+FFFD, never an error."""
    try:
        with path.open("rb") as file:
            if last_bytes is not None:
                file.seek(0, 2)
                file.seek(max(file.tell() - last_bytes, 0))
            return file.read().decode("utf-8", errors="replace")
    except OSError as error:
        return f"cannot read {path.name}: {error.strerror or error}"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.exists():
        return "no log.txt in this run"
    kept = read_text(path, LOG_TAIL_BYTES).splitlines()[-lines:]
    return "\n".join(kept)
