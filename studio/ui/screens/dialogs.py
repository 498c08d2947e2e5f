"""Modal dialogs: an error with advice, a yes/no question, a question with several answers,
a file path prompt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from studio.errors import StudioError


class ErrorScreen(ModalScreen[None]):
    """What went wrong, and what to try: the advice is the point of the dialog."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("enter", "dismiss", "Close", show=False),
    ]

    def __init__(self, title: str, message: str, advice: Sequence[str] = ()) -> None:
        super().__init__(classes="dialog")
        self.error_title = title
        self.message = message
        self.advice = tuple(advice)

    @classmethod
    def from_exception(cls, title: str, error: BaseException) -> ErrorScreen:
        if isinstance(error, StudioError):
            message = f"{error.location}: {error.message}" if error.location else error.message
            return cls(title, message, (error.advice,) if error.advice else ())
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return cls(
            title,
            f"{type(error).__name__}: {first_line}".rstrip(": "),
            ("this is a bug in ftstudio; the log (textual console) has the traceback",),
        )

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-body", classes="-error"):
            yield Label(self.error_title, id="dialog-title")
            with VerticalScroll(id="dialog-text"):
                yield Static(self.message, id="error-message", markup=False)
                if self.advice:
                    yield Label("What to try:", classes="advice-heading")
                    for advice in self.advice:
                        yield Static(f"• {advice}", classes="advice", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", id="close", variant="error", compact=True)

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss()


class ConfirmScreen(ModalScreen[bool]):
    """A yes / no question; dismissed with True for yes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "answer(False)", "No"),
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__(classes="dialog")
        self.question = question
        self.yes_label = yes
        self.no_label = no

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-body"):
            yield Static(self.question, id="dialog-question", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.yes_label, id="yes", variant="warning", compact=True)
                yield Button(self.no_label, id="no", compact=True)

    def on_mount(self) -> None:
        # The safe answer has the focus: a stray enter must never delete anything.
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


@dataclass(frozen=True)
class Answer:
    """One answer of a `ChoiceScreen`: what it returns, its button, and its key."""

    answer: str
    label: str
    key: str
    variant: Literal["default", "primary", "success", "warning", "error"] = "default"


class ChoiceScreen(ModalScreen[str | None]):
    """A question with several answers, each a button with its own key; dismissed with the
    chosen `Answer.answer`, or None for escape."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "choose(None)", "Cancel")]

    def __init__(self, question: str, choices: Sequence[Answer]) -> None:
        super().__init__(classes="dialog")
        self.question = question
        self.choices = tuple(choices)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-body"):
            yield Static(self.question, id="dialog-question", markup=False)
            with Horizontal(classes="dialog-buttons"):
                for choice in self.choices:
                    yield Button(
                        f"{choice.label} {'esc' if choice.key == 'escape' else choice.key}",
                        id=f"choice-{choice.answer}",
                        variant=choice.variant,
                        compact=True,
                    )

    def on_key(self, event: events.Key) -> None:
        for choice in self.choices:
            if event.key == choice.key:
                event.stop()
                self.dismiss(choice.answer)
                return

    def action_choose(self, answer: str | None) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        answer = (event.button.id or "").removeprefix("choice-")
        self.dismiss(answer or None)


class PathScreen(ModalScreen[str | None]):
    """Ask for a file path; offers known files to pick from. Dismissed with the path or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, title: str, value: str = "", suggestions: Sequence[str] = (), action: str = "OK"
    ) -> None:
        super().__init__(classes="dialog")
        self.dialog_title = title
        self.value = value
        self.suggestions = tuple(suggestions)
        self.action_label = action

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-body"):
            yield Label(self.dialog_title, id="dialog-title")
            yield Input(self.value, placeholder="path/to/file.yaml", id="path")
            if self.suggestions:
                yield OptionList(
                    *(Option(path, id=path) for path in self.suggestions), id="suggestions"
                )
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.action_label, id="ok", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    @on(OptionList.OptionHighlighted, "#suggestions")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            self.query_one("#path", Input).value = event.option.id

    @on(OptionList.OptionSelected, "#suggestions")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.dismiss(event.option.id)

    @on(Input.Submitted, "#path")
    @on(Button.Pressed, "#ok")
    def _submit(self) -> None:
        path = self.query_one("#path", Input).value.strip()
        if path:
            self.dismiss(path)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
