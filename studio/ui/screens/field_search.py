"""`/` on Config: find a field by name or by what it does, and jump to it.

Type part of a name (`lr`, `learning`, `rank`) or of a description (`checkpoint`); the list
narrows as you type, names first; enter (or a click) jumps to the field. Dismissed with the
field's path, or None for escape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from studio.config import FieldSpec

SHOWN = 12


def matching_fields(specs: Sequence[FieldSpec], query: str) -> list[FieldSpec]:
    """Fields whose path holds every word of `query`, then those whose description does."""
    words = query.lower().replace("_", " ").split()
    if not words:
        return list(specs)

    def holds(text: str) -> bool:
        text = text.lower().replace("_", " ")
        return all(word in text for word in words)

    by_name = [spec for spec in specs if holds(spec.path)]
    by_meaning = [spec for spec in specs if spec not in by_name and holds(spec.description)]
    return by_name + by_meaning


class FieldSearchScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("down", "move(1)", "Next", show=False),
        Binding("up", "move(-1)", "Previous", show=False),
    ]

    def __init__(self, specs: Sequence[FieldSpec]) -> None:
        super().__init__(classes="dialog")
        self.specs = list(specs)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-body"):
            yield Label("Find a field: its name or what it does", id="dialog-title")
            yield Input(placeholder="e.g. learning rate, rank, checkpoint", id="field-query")
            yield OptionList(id="field-matches")

    def on_mount(self) -> None:
        self._show("")
        self.query_one("#field-query", Input).focus()

    @on(Input.Changed, "#field-query")
    def _typed(self, event: Input.Changed) -> None:
        self._show(event.value)

    def _show(self, query: str) -> None:
        matches = self.query_one("#field-matches", OptionList)
        matches.clear_options()
        found = matching_fields(self.specs, query)[:SHOWN]
        matches.add_options(
            [Option(f"{spec.path}  {spec.description[:50]}", id=spec.path) for spec in found]
        )
        if found:
            matches.highlighted = 0

    def action_move(self, offset: int) -> None:
        matches = self.query_one("#field-matches", OptionList)
        if matches.option_count:
            current = matches.highlighted or 0
            matches.highlighted = max(0, min(current + offset, matches.option_count - 1))

    @on(Input.Submitted, "#field-query")
    def _submitted(self) -> None:
        matches = self.query_one("#field-matches", OptionList)
        option = matches.highlighted_option
        if option is not None:
            self.dismiss(option.id)

    @on(OptionList.OptionSelected, "#field-matches")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
