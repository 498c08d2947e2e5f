"""Chat: talk to a run's adapter, one of its checkpoints, or a base model, token by token.

One conversation: the loaded model's. In compare mode each question is also answered by the
base model (the adapter switched off, the same weights underneath) given the same
conversation, side by side, so any difference comes from training. Replies stream from a
thread worker; `escape` stops one after the current token.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from itertools import count
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, Static

from studio.chat.settings import ChatMessage, GenerationSettings
from studio.terminal_text import printable
from studio.ui.chat.choices import ChatChoice
from studio.ui.screens.base import StudioScreen
from studio.ui.screens.chat_dialogs import ChooseChatModelScreen
from studio.ui.widgets.chat_settings import ChatSettingsPanel

if TYPE_CHECKING:
    from studio.chat import ChatModel

_turn_ids = count(1)


@dataclass
class Turn:
    """One question and its replies ("adapter" and, in compare mode, "base")."""

    id: int
    question: str
    replies: dict[str, str] = field(default_factory=dict)
    done: bool = False


def visible_text(text: str) -> str:
    """Model output made safe for the terminal: control characters become visible symbols.

    An untrained model emits any token, control bytes included; written raw they would move
    the cursor or garble the screen.
    """
    # C0 controls as their pictures (␀..␟) read better in a reply than escapes; the rest
    # (DEL, C1, bidi overrides) goes through the one terminal-safety function.
    pictured = _C0_CONTROLS.sub(lambda match: chr(0x2400 + ord(match.group())), text)
    return printable(pictured.replace("\t", "    "))


_C0_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f]")


class ReplyText(Static):
    """One side's reply; grows as pieces stream in."""


class TurnView(Vertical):
    """A question and its reply, or both replies side by side in compare mode."""

    def __init__(self, turn: Turn, sides: tuple[str, ...], labels: dict[str, str]) -> None:
        super().__init__(classes="turn")
        self.turn = turn
        self.sides = sides
        self.labels = labels

    def compose(self) -> ComposeResult:
        yield Static(visible_text(self.turn.question), classes="question", markup=False)
        with Horizontal(classes="replies"):
            for side in self.sides:
                with Vertical(classes=f"reply -{side}"):
                    yield Label(self.labels[side], classes="reply-label")
                    yield ReplyText("…", id=f"reply-{self.turn.id}-{side}", markup=False)

    def show(self, side: str, text: str, finished: bool = False, note: str = "") -> None:
        reply = self.query_one(f"#reply-{self.turn.id}-{side}", ReplyText)
        if text:
            shown = visible_text(text)
        else:
            shown = "(no reply: the model ended it at once)" if finished and not note else "…"
        reply.update(shown + (f"\n({note})" if note else ""))


class ChatScreen(StudioScreen):
    MODE = "chat"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+l", "choose_model", "Load model"),
        Binding("ctrl+b", "toggle_compare", "Compare"),
        Binding("ctrl+n", "new_chat", "New chat"),
        Binding("ctrl+g", "toggle_settings", "Settings"),
        Binding("escape", "stop_generation", "Stop", show=False),
    ]

    class ModelLoaded(Message):
        def __init__(self, chat: ChatModel, label: str) -> None:
            super().__init__()
            self.chat = chat
            self.label = label

    class LoadProgress(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class ReplyProgress(Message):
        """The reply so far (cumulative, so a newer one may replace an older one)."""

        def __init__(self, turn_id: int, side: str, text: str) -> None:
            super().__init__()
            self.turn_id = turn_id
            self.side = side
            self.text = text

        def can_replace(self, message: Message) -> bool:
            return (
                isinstance(message, ChatScreen.ReplyProgress)
                and message.turn_id == self.turn_id
                and message.side == self.side
            )

    class ReplyFinished(Message):
        def __init__(
            self, turn_id: int, replies: dict[str, str], stopped: bool, failed: bool = False
        ) -> None:
            super().__init__()
            self.turn_id = turn_id
            self.replies = replies
            self.stopped = stopped
            self.failed = failed

    def __init__(self) -> None:
        super().__init__()
        self.chat: ChatModel | None = None
        self.chat_label = ""
        self.compare = False
        self.history: list[ChatMessage] = []
        self.turns: dict[int, TurnView] = {}
        self._cancel: threading.Event | None = None
        self._loading = False
        self._pending_question: str | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="chat-toolbar"):
            yield Static("No model loaded", id="chat-model", markup=False)
            yield Button("Load ^l", id="load-model", compact=True)
            yield Button("Compare: off", id="compare", compact=True)
            yield Button("Settings ^g", id="settings", compact=True)
        with Horizontal(id="chat-main"):
            with VerticalScroll(id="chat-log"):
                yield Static(
                    "Load a model with ctrl+l: a run's adapter, one of its checkpoints, or a "
                    "base model alone. After a run finishes its adapter loads by itself.",
                    id="chat-hint",
                )
            yield ChatSettingsPanel(id="chat-settings", classes="hidden")
        yield Input(placeholder="Ask something (enter sends, esc stops)", id="chat-input")

    @property
    def settings(self) -> GenerationSettings:
        return self.query_one(ChatSettingsPanel).settings

    def on_mount(self) -> None:
        self.studio_app.runs.changed.subscribe(self, lambda _monitor: self._maybe_load_last_run())
        self._maybe_load_last_run()
        self.query_one("#chat-input", Input).focus()

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self._maybe_load_last_run()

    # ---------------------------------------------------------------- loading a model

    def _maybe_load_last_run(self) -> None:
        """With nothing loaded, load the newest finished run's adapter."""
        app = self.studio_app
        run_dir = app.studio.last_run_dir
        if self.chat is not None or self._loading or not run_dir or app.runs.training_active:
            return
        from pathlib import Path

        run = Path(run_dir)
        if (run / "adapter").is_dir():
            self.load(ChatChoice(f"run:{run}", f"{run.name} · adapter", run))

    def action_choose_model(self) -> None:
        app = self.studio_app
        runs_dir = app.services.resolve(app.studio.config.output.runs_dir)
        self.app.push_screen(
            ChooseChatModelScreen(runs_dir, app.studio.config.model.source), self._chosen
        )

    @on(Button.Pressed, "#load-model")
    def _load_pressed(self) -> None:
        self.action_choose_model()

    def _chosen(self, choice: ChatChoice | None) -> None:
        # Back from the dialog the question box has the keys, so the user can type at once.
        self.query_one("#chat-input", Input).focus()
        if choice is not None:
            self.load(choice)

    def load(self, choice: ChatChoice) -> None:
        self.action_stop_generation()
        self._loading = True
        self._show_model(f"loading {choice.label}…")
        self._load(choice)

    @work(thread=True, exclusive=True, group="chat-load", exit_on_error=False)
    def _load(self, choice: ChatChoice) -> None:
        from studio.chat import ChatModel
        from studio.ui.chrome.heavy_imports import ensure_ml_imports

        try:
            ensure_ml_imports()
            target = choice.target()
            chat = ChatModel.load(
                target, on_progress=lambda text: self.post_message(self.LoadProgress(text))
            )
        except BaseException:
            self.post_message(self.LoadProgress(""))
            raise
        self.post_message(self.ModelLoaded(chat, target.label))

    @on(LoadProgress)
    def _load_progress(self, message: LoadProgress) -> None:
        if message.text:
            self._show_model(message.text + "…")
        else:  # the load failed; the app shows the error
            self._loading = False
            self._show_model(self.chat_label or "No model loaded")

    @on(ModelLoaded)
    def _model_loaded(self, message: ModelLoaded) -> None:
        old = self.chat
        self.chat = message.chat
        self.chat_label = message.label
        self._loading = False
        if old is not None:
            old.close()
        self.compare = self.compare and message.chat.has_adapter
        self._show_model(message.label)
        self._show_compare()
        self.query_one("#chat-hint", Static).update(
            f"Loaded {message.label} on {message.chat.device}. Ask away."
        )
        if self._pending_question:
            question, self._pending_question = self._pending_question, None
            self._ask(question)

    def _show_model(self, text: str) -> None:
        self.query_one("#chat-model", Static).update(text)

    # ---------------------------------------------------------------- chatting

    @on(Input.Submitted, "#chat-input")
    def _submitted(self, event: Input.Submitted) -> None:
        question = event.value.strip()
        if not question:
            return
        if self._cancel is not None:
            self.notify(
                "a reply is still being written; esc stops it", severity="warning", markup=False
            )
            return
        event.input.value = ""
        if self.chat is None:
            self._pending_question = question
            if not self._loading:
                self.notify(
                    "load a model first (ctrl+l); your question waits", timeout=6, markup=False
                )
                self.action_choose_model()
            return
        self._ask(question)

    def _ask(self, question: str) -> None:
        assert self.chat is not None
        sides = ("base", "adapter") if self.compare else ("adapter",)
        turn = Turn(next(_turn_ids), question)
        labels = {
            "adapter": "with adapter" if self.chat.has_adapter else "base model",
            "base": "base model (adapter off)",
        }
        view = TurnView(turn, sides, labels)
        self.turns[turn.id] = view
        log = self.query_one("#chat-log", VerticalScroll)
        log.mount(view)
        log.scroll_end(animate=False)
        self._cancel = threading.Event()
        self._generate(turn.id, list(self.history), question, self.settings, self._cancel)

    @work(thread=True, exclusive=True, group="chat", exit_on_error=False)
    def _generate(
        self,
        turn_id: int,
        history: list[ChatMessage],
        question: str,
        settings: GenerationSettings,
        cancel: threading.Event,
    ) -> None:
        chat = self.chat
        assert chat is not None
        replies: dict[str, str] = {}
        failed = False
        try:
            if self.compare:
                for side, piece in chat.stream_compare(history, question, settings, cancel=cancel):
                    replies[side] = replies.get(side, "") + piece
                    self.post_message(self.ReplyProgress(turn_id, side, replies[side]))
            else:
                for piece in chat.stream(history, question, settings, cancel=cancel):
                    replies["adapter"] = replies.get("adapter", "") + piece
                    self.post_message(self.ReplyProgress(turn_id, "adapter", replies["adapter"]))
        except BaseException:
            failed = True  # the app's worker handler shows the error and its advice
            raise
        finally:
            self.post_message(self.ReplyFinished(turn_id, replies, cancel.is_set(), failed))

    @on(ReplyProgress)
    def _reply_progress(self, message: ReplyProgress) -> None:
        view = self.turns.get(message.turn_id)
        if view is not None:
            view.show(message.side, message.text)
            self.query_one("#chat-log", VerticalScroll).scroll_end(animate=False)

    @on(ReplyFinished)
    def _reply_finished(self, message: ReplyFinished) -> None:
        self._cancel = None
        view = self.turns.get(message.turn_id)
        if view is None:
            return
        view.turn.replies = message.replies
        view.turn.done = True
        note = "failed" if message.failed else "stopped" if message.stopped else ""
        for side in view.sides:
            view.show(side, message.replies.get(side, ""), finished=True, note=note)
        if message.failed:
            return  # a failed turn is not part of the conversation
        answer = message.replies.get("adapter", "")
        self.history += [ChatMessage("user", view.turn.question), ChatMessage("assistant", answer)]

    def action_stop_generation(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
        else:
            self.query_one("#chat-input", Input).blur()

    def action_new_chat(self) -> None:
        self.action_stop_generation()
        self.history.clear()
        self.turns.clear()
        for view in self.query(TurnView):
            view.remove()
        self.notify("new conversation", markup=False)

    @on(Button.Pressed, "#compare")
    def action_toggle_compare(self) -> None:
        if not self.compare and (self.chat is None or not self.chat.has_adapter):
            self.notify(
                "compare needs a model with an adapter (ctrl+l)", severity="warning", markup=False
            )
            return
        self.compare = not self.compare
        self._show_compare()

    def _show_compare(self) -> None:
        button = self.query_one("#compare", Button)
        button.label = f"Compare: {'on' if self.compare else 'off'} ^b"
        button.set_class(self.compare, "-on")

    @on(Button.Pressed, "#settings")
    def action_toggle_settings(self) -> None:
        panel = self.query_one(ChatSettingsPanel)
        panel.toggle_class("hidden")
        if not panel.has_class("hidden"):
            panel.focus_first()
        else:
            self.query_one("#chat-input", Input).focus()
