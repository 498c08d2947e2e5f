"""Sampling settings for the chat, generated from `studio.chat.GenerationSettings`' fields:
system prompt, temperature, top-p, top-k, max new tokens, repetition penalty, seed.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Checkbox, Input, Label, Select, Static

from studio.chat.settings import GenerationSettings, generation_settings
from studio.config import FieldSpec, section_fields
from studio.errors import ConfigError
from studio.ui.widgets.config_form import FieldValueError, editor_id, make_editor, parse_text


class ChatSettingsPanel(VerticalScroll):
    """Edits `settings`; an invalid value is named below the fields and not used."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.settings = GenerationSettings()
        self.specs: list[FieldSpec] = section_fields(GenerationSettings, "")

    def compose(self) -> ComposeResult:
        yield Label("Generation", classes="pane-title")
        values = self.settings.model_dump()
        for spec in self.specs:
            yield Label(spec.path.replace("_", " "), classes="setting-label")
            yield make_editor(spec, values[spec.path])
        yield Static("", id="settings-problem")

    def focus_first(self) -> None:
        self.query_one(f"#{editor_id(self.specs[0].path)}").focus()

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _changed(self, event: Input.Changed | Select.Changed | Checkbox.Changed) -> None:
        event.stop()
        values = {}
        problem = ""
        for spec in self.specs:
            editor = self.query_one(f"#{editor_id(spec.path)}")
            try:
                if isinstance(editor, Input):
                    values[spec.path] = parse_text(spec, editor.value)
                else:
                    values[spec.path] = getattr(editor, "value", None)
            except FieldValueError as error:
                problem = str(error)
        if not problem:
            try:
                self.settings = generation_settings(values)
            except ConfigError as error:
                problem = error.message
        self.query_one("#settings-problem", Static).update(problem)

    def on_descendant_focus(self, event) -> None:
        spec = next(
            (spec for spec in self.specs if editor_id(spec.path) == (event.widget.id or "")),
            None,
        )
        if spec is not None:
            self.query_one("#settings-problem", Static).update(spec.description)
