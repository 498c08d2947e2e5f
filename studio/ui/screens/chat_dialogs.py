"""Pick what to chat with: the base model alone, a run's adapter, or one of its checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from studio.ui.chat.choices import ChatChoice, chat_choices


class ChooseChatModelScreen(ModalScreen[ChatChoice | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, runs_dir: Path, base_source: str) -> None:
        super().__init__(classes="dialog")
        self.runs_dir = runs_dir
        self.base_source = base_source
        self.choices: list[ChatChoice] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-body"):
            yield Label("Chat with…", id="dialog-title")
            yield OptionList(id="chat-choices")
            yield Static(
                f"runs in {self.runs_dir}; enter loads, escape cancels",
                classes="muted",
                markup=False,
            )

    def on_mount(self) -> None:
        self.choices = chat_choices(self.runs_dir, self.base_source)
        options = self.query_one("#chat-choices", OptionList)
        options.add_options([Option(choice.label, id=choice.key) for choice in self.choices])
        # The newest run's adapter is the likely pick.
        options.highlighted = 1 if len(self.choices) > 1 else 0
        options.focus()

    @on(OptionList.OptionSelected, "#chat-choices")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        choice = next((c for c in self.choices if c.key == event.option.id), None)
        self.dismiss(choice)

    def action_cancel(self) -> None:
        self.dismiss(None)
