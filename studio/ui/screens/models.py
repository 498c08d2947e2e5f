"""Models: the built-in tiny model, added folders and hub ids, and the Hugging Face cache.

The highlighted model's architecture, size and an estimate of the GPU memory each method
needs are read from its config on a worker thread, never loading weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from studio.config import RunConfig
from studio.errors import ModelError
from studio.formatting import format_bytes, format_count
from studio.ui.chrome.glyphs import glyph
from studio.ui.config.starter import with_base_model
from studio.ui.models.catalog import TINY_ENTRY, ModelDetails, ModelEntry
from studio.ui.screens.base import StudioScreen
from studio.ui.widgets.device_picker import DevicePicker
from studio.ui.widgets.memory_estimate import MemoryEstimatePanel


class ModelsScreen(StudioScreen):
    MODE = "models"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("u", "use_model", "Use model"),
        Binding("a", "add_model", "Add"),
        Binding("r", "rescan", "Rescan"),
    ]

    class Listed(Message):
        """The model list was (re)built on a worker."""

        def __init__(self, entries: list[ModelEntry]) -> None:
            super().__init__()
            self.entries = entries

    class Described(Message):
        """A model was inspected on a worker."""

        def __init__(self, details: ModelDetails) -> None:
            super().__init__()
            self.details = details

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[ModelEntry] = [TINY_ENTRY]
        self._details: dict[str, ModelDetails] = {}
        self._describing: str | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="models-body"):
            with Vertical(id="model-list-pane", classes="pane"):
                yield Label("Models", classes="pane-title")
                yield OptionList(id="model-list")
                yield Input(placeholder="add a hub id or folder", id="add-model", compact=True)
            with VerticalScroll(id="model-details-pane", classes="pane"):
                yield Label("", id="model-title", classes="pane-title")
                yield Static("", id="model-summary")
                yield MemoryEstimatePanel(id="memory-estimate")
                yield DevicePicker(id="device-picker")

    @property
    def model_list(self) -> OptionList:
        return self.query_one("#model-list", OptionList)

    def home_widget(self) -> OptionList:
        return self.model_list

    def on_mount(self) -> None:
        self._show_entries(self.entries)
        self.studio_app.config_changed.subscribe(self, self._config_changed)
        self.action_rescan()

    # ---------------------------------------------------------------- the list

    def action_rescan(self) -> None:
        self._list_models(list(self.studio_app.settings.added_models))

    @work(thread=True, exclusive=True, group="models-list", exit_on_error=False)
    def _list_models(self, added: list[str]) -> None:
        from studio.ui.models.catalog import list_models

        services = self.studio_app.services
        entries = list_models(added, services.hub_cache_dir, services.workdir)
        self.post_message(self.Listed(entries))

    @on(Listed)
    def _listed(self, message: Listed) -> None:
        self.entries = message.entries
        self._show_entries(self.entries)

    def _show_entries(self, entries: list[ModelEntry]) -> None:
        option_list = self.model_list
        highlighted = option_list.highlighted_option
        keep = highlighted.id if highlighted else self.studio_app.studio.config.model.source
        option_list.clear_options()
        option_list.add_options([Option(self._prompt(entry), id=entry.source) for entry in entries])
        sources = [entry.source for entry in entries]
        option_list.highlighted = sources.index(keep) if keep in sources else 0

    def _prompt(self, entry: ModelEntry) -> Content:
        chosen = entry.source == self.studio_app.studio.config.model.source
        extra = entry.kind_label
        if entry.size_bytes:
            extra += f" {format_bytes(entry.size_bytes)}"
        return Content.assemble(
            (f"{glyph('check')} " if chosen else "  ", "bold"),
            entry.source,
            (f"  {extra}", "$text-muted"),
        )

    def _config_changed(self, config: RunConfig) -> None:
        self._show_entries(self.entries)
        self.query_one(MemoryEstimatePanel).config = config

    # ---------------------------------------------------------------- details

    @on(OptionList.OptionHighlighted, "#model-list")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        entry = self._entry(event.option.id)
        if entry is None:
            return
        self.query_one("#model-title", Label).update(entry.source)
        cached = self._details.get(entry.source)
        if cached is not None:
            self._show_details(cached)
            return
        self.query_one("#model-summary", Static).update("reading the model's config…")
        self.query_one(MemoryEstimatePanel).details = None
        if self._describing != entry.source:
            self._describing = entry.source
            self._describe(entry)

    @work(thread=True, exclusive=True, group="models", exit_on_error=False)
    def _describe(self, entry: ModelEntry) -> None:
        from studio.ui.models.catalog import describe_model

        try:
            details = describe_model(entry)
        except ModelError as error:
            details = ModelDetails(entry, None, f"{error.message}. {error.advice or ''}".strip())
        self.post_message(self.Described(details))

    @on(Described)
    def _described(self, message: Described) -> None:
        details = message.details
        self._details[details.entry.source] = details
        if self._describing == details.entry.source:
            self._describing = None
        highlighted = self.model_list.highlighted_option
        if highlighted is not None and highlighted.id == details.entry.source:
            self._show_details(details)

    def _show_details(self, details: ModelDetails) -> None:
        self.query_one("#model-summary", Static).update(model_details_text(details))
        panel = self.query_one(MemoryEstimatePanel)
        panel.config = self.studio_app.studio.config
        panel.details = details

    def _entry(self, source: str | None) -> ModelEntry | None:
        return next((entry for entry in self.entries if entry.source == source), None)

    # ---------------------------------------------------------------- actions

    @on(OptionList.OptionSelected, "#model-list")
    def action_use_model(self) -> None:
        """Make the highlighted model the run's base model."""
        option = self.model_list.highlighted_option
        if option is None or option.id is None:
            return
        app = self.studio_app
        config = app.studio.config
        note = ""
        if config.model.source != option.id:
            changed, swapped = with_base_model(config, option.id)
            app.set_config(changed, app.studio.config_problem)
            note = f"\n{swapped}" if swapped else ""
        self.notify(f"base model: {option.id}{note}", markup=False)

    def action_add_model(self) -> None:
        self.query_one("#add-model", Input).focus()

    @on(Input.Submitted, "#add-model")
    def _add_model(self, event: Input.Submitted) -> None:
        from studio.models.sources import resolve_model_source

        source = event.value.strip()
        if not source:
            return
        services = self.studio_app.services
        as_path = services.resolve(source)
        try:
            if as_path.exists():
                resolve_model_source(str(as_path), build_tiny=False)
            else:
                resolve_model_source(source, build_tiny=False)
        except ModelError as error:
            self.notify(
                f"{error.message}\n{error.advice or ''}", severity="error", timeout=10, markup=False
            )
            return
        settings = self.studio_app.settings
        if source not in settings.added_models:
            settings.added_models.append(source)
            self.studio_app.save_user_settings()
        event.input.value = ""
        self.entries = [*self.entries, _added_entry(source, as_path)]
        self._show_entries(self.entries)
        self.model_list.highlighted = len(self.entries) - 1
        self.model_list.focus()
        self.action_rescan()


def _added_entry(source: str, folder: Path) -> ModelEntry:
    if (folder / "config.json").exists():
        return ModelEntry(source, "folder", folder=str(folder))
    return ModelEntry(source, "hub")


def model_details_text(details: ModelDetails) -> Text:
    """The details pane: what the model is, from its config."""
    info = details.info
    text = Text()
    if info is None:
        text.append(details.note or "no details", style="italic")
        return text
    template_labels: dict[bool | None, str] = {
        True: "yes",
        False: "none: a preset is used (chat_template_preset)",
    }
    chat_template = template_labels.get(info.has_chat_template, "?")
    rows = [
        ("architecture", info.architecture),
        ("parameters", format_count(info.num_parameters)),
        ("dtype", info.dtype or "?"),
        ("size on disk", format_bytes(info.size_on_disk)),
        ("layers", f"{info.num_layers or '?'} × hidden {info.hidden_size or '?'}"),
        ("vocabulary", f"{info.vocab_size or '?'} tokens"),
        ("context", f"{info.max_positions or '?'} tokens"),
        ("chat template", chat_template),
        ("source", details.entry.kind_label),
    ]
    for index, (name, value) in enumerate(rows):
        if index:
            text.append("\n")
        text.append(f"{name:<14}", style="bold")
        text.append(str(value))
    return text
