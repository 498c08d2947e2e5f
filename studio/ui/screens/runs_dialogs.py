"""Dialogs of the Runs screen: out-of-memory triage (what the run was doing, what would fit,
relaunch with one key) and export (adapter or merged model, and where)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, OptionList, RadioButton, RadioSet, Static
from textual.widgets.option_list import Option

from studio.formatting import GIB, MIB
from studio.runs.catalog import RunSummary
from studio.runs.triage import OutOfMemoryTriage
from studio.ui.widgets.metric_plot import MetricPlot, Series

CARRY_WORDS = {
    "everything": "goes on from the checkpoint",
    "weights": "goes on from the checkpoint's weights; the optimizer state starts fresh",
    "nothing": "starts a new run from step 0 beside this one",
}


class TriageScreen(ModalScreen[Any]):
    """Why a run ran out of memory and what would fit; dismissed with the chosen
    `MemoryChoice` (a number key picks one at once) or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        *(
            Binding(str(number), f"relaunch({number})", f"Relaunch with {number}", show=False)
            for number in range(1, 10)
        ),
    ]

    def __init__(self, triage: OutOfMemoryTriage) -> None:
        super().__init__()
        self.triage = triage

    def compose(self) -> ComposeResult:
        triage = self.triage
        with Vertical(id="triage-body"):
            yield Label(f"{triage.run.name} ran out of memory", id="triage-title", markup=False)
            yield Static(triage_facts(triage), id="triage-facts")
            yield MetricPlot(
                memory_title(triage), empty_text="no memory samples recorded", id="triage-memory"
            )
            yield OptionList(
                *(
                    Option(f"{number}  {choice.title}", id=choice.key)
                    for number, choice in enumerate(triage.choices, 1)
                ),
                id="triage-choices",
            )
            yield Static("", id="triage-advice", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        scale = GIB if (self.triage.peak_bytes or 0) >= GIB else MIB
        points = [(seconds, value / scale) for seconds, value in self.triage.memory_curve]
        self.query_one("#triage-memory", MetricPlot).set_series(
            [Series(self.triage.memory_series or "memory", points, "plot-memory-used")]
        )
        choices = self.query_one("#triage-choices", OptionList)
        if self.triage.choices:
            choices.highlighted = 0
        choices.focus()
        self._show_advice(0)

    @on(OptionList.OptionHighlighted, "#triage-choices")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show_advice(event.option_index)

    def _show_advice(self, index: int) -> None:
        advice = self.query_one("#triage-advice", Static)
        if not self.triage.choices:
            advice.update("no change is known that would lower memory for this run")
            return
        choice = self.triage.choices[index]
        advice.update(
            f"{choice.advice}; the relaunch {CARRY_WORDS.get(choice.carry, choice.carry)}. "
            "Enter or the change's number relaunches."
        )

    @on(OptionList.OptionSelected, "#triage-choices")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.action_relaunch(event.option_index + 1)

    def action_relaunch(self, number: int) -> None:
        if 0 < number <= len(self.triage.choices):
            self.dismiss(self.triage.choices[number - 1])
        else:
            self.notify(f"there is no change {number}", severity="warning")

    def action_cancel(self) -> None:
        self.dismiss(None)


def memory_title(triage: OutOfMemoryTriage) -> str:
    unit = "GiB" if (triage.peak_bytes or 0) >= GIB else "MiB"
    return f"memory ({triage.memory_series or 'not recorded'}), {unit}, by seconds"


def triage_facts(triage: OutOfMemoryTriage) -> Content:
    """What the run was doing when memory ran out."""
    where = f"at step {triage.step}" if triage.step else "before the first step"
    if triage.max_steps:
        where += f" of {triage.max_steps}"
    batch = f"batch {triage.batch_size} x {triage.gradient_accumulation} accumulation"
    if triage.batch_shape:
        batch += f", in flight {' x '.join(map(str, triage.batch_shape))} (examples x tokens)"
    memory = ""
    if triage.peak_bytes is not None:
        total = f" of {triage.memory_total_bytes / GIB:.1f}" if triage.memory_total_bytes else ""
        memory = f"; peak {triage.peak_bytes / GIB:.2f}{total} GiB"
    start = f"checkpoint-{triage.last_checkpoint}" if triage.last_checkpoint else "step 0"
    return Content.assemble(
        (triage.message, "$error"),
        f"\n{where} with {triage.method}; {batch}",
        f"\nsequence length up to {triage.max_length} (data.max_length){memory}",
        f"\na relaunch goes on from {start}. Changes that would fit:",
    )


@dataclass(frozen=True)
class ExportRequest:
    merged: bool
    target: Path

    @property
    def kind(self) -> str:
        return "merged model" if self.merged else "adapter"


class ExportScreen(ModalScreen[ExportRequest | None]):
    """Export a run: its adapter with a model card, or (methods that can merge) a merged
    model; into RUN/exports/... unless another folder is typed."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, run: RunSummary) -> None:
        super().__init__(classes="dialog")
        self.run_summary = run
        self.can_merge = can_merge(run.method)
        self._default = True  # the folder follows the kind until the user types one

    def compose(self) -> ComposeResult:
        run = self.run_summary
        with Vertical(id="dialog-body"):
            yield Label(f"Export {run.name}", id="dialog-title", markup=False)
            with RadioSet(id="export-kind"):
                yield RadioButton("adapter (PEFT) with a model card", value=True, id="adapter")
                yield RadioButton(
                    "merged model (safetensors, loads with plain transformers)",
                    id="merged",
                    disabled=not self.can_merge,
                )
            if not self.can_merge:
                yield Static(f"{run.method} cannot be merged into the base model", id="export-note")
            yield Label("into the folder:")
            yield Input(self._target(False), id="export-target")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Export", id="export", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#export-kind", RadioSet).focus()

    def _target(self, merged: bool) -> str:
        from studio.runs.export import default_export_dir

        folder = default_export_dir(self.run_summary.path, merged)
        return self.app.services.display(folder)  # type: ignore[attr-defined]

    @property
    def merged(self) -> bool:
        pressed = self.query_one("#export-kind", RadioSet).pressed_button
        return pressed is not None and pressed.id == "merged"

    @on(RadioSet.Changed, "#export-kind")
    def _kind_changed(self) -> None:
        if self._default:
            field = self.query_one("#export-target", Input)
            field.value = self._target(self.merged)
            self._default = True

    @on(Input.Changed, "#export-target")
    def _target_typed(self, event: Input.Changed) -> None:
        self._default = event.value in (self._target(False), self._target(True))

    @on(Input.Submitted, "#export-target")
    @on(Button.Pressed, "#export")
    def _export(self) -> None:
        text = self.query_one("#export-target", Input).value.strip()
        if not text:
            self.notify("type the folder to export into", severity="warning")
            return
        # Relative to the folder ftstudio runs in, like every path the studio asks for.
        target = self.app.services.resolve(text)  # type: ignore[attr-defined]
        self.dismiss(ExportRequest(self.merged, target))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def can_merge(method: str) -> bool:
    from studio.errors import StudioError
    from studio.methods.registry import get_method

    try:
        # Full and freeze runs are whole models: they export as standalone models too.
        return get_method(method).can_export
    except (StudioError, KeyError, ValueError):
        return False
