"""Config: the run config as a form, the dataset as the model will see it, and the YAML file.

Tabs: Settings (the form, with the focused field's description, default and range), Dataset
(pick a file; counts, dropped records and the first records after the chat template) and
Save & run (the YAML, the equivalent `ftstudio train` line, save / load / copy).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Button, Input, Label, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from studio.config import FieldSpec, RunConfig, dump_config
from studio.errors import ConfigError
from studio.terminal_text import printable
from studio.ui.chrome.glyphs import glyph
from studio.ui.config.command_line import train_command_line
from studio.ui.data.corpus_preview import PREVIEW_MAX_FILES, PREVIEW_MAX_SECONDS, CorpusPreview
from studio.ui.data.dataset_preview import PROBLEMS_SHOWN, DatasetPreview
from studio.ui.screens.base import StudioScreen
from studio.ui.screens.dialogs import ErrorScreen, PathScreen
from studio.ui.widgets.config_form import ConfigForm, editor_id

PREVIEW_DELAY = 0.4
FIELD_HELP_HINT = (
    "/ finds a field by name or meaning; tab / shift+tab move between fields; the focused "
    "field's meaning, default and range show here. Changed fields are highlighted. esc leaves "
    "a field (then 1-5 switch screens)."
)


class ConfigScreen(StudioScreen):
    MODE = "config"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save_config", "Save"),
        Binding("ctrl+o", "load_config", "Load"),
        Binding("ctrl+t", "next_tab", "Next tab"),
        Binding("escape", "leave_field", "Leave field", show=False),
        Binding("slash", "find_field", "Find field"),
    ]

    class PreviewReady(Message):
        def __init__(
            self, preview: DatasetPreview | None, key: tuple, corpus: CorpusPreview | None = None
        ) -> None:
            super().__init__()
            self.preview = preview  # None for a folder of documents: not a dataset yet
            self.key = key
            self.corpus = corpus  # what `data prepare` would make of documents

    class DatasetsFound(Message):
        def __init__(self, paths: list[str]) -> None:
            super().__init__()
            self.paths = paths

    def __init__(self) -> None:
        super().__init__()
        self._preview_timer: Timer | None = None
        self._preview_key: tuple | None = None
        self._dataset_paths: list[str] = []

    def compose_body(self) -> ComposeResult:
        config = self.studio_app.studio.config
        yield Static("", id="config-status", markup=False)
        with TabbedContent(id="config-tabs"):
            with TabPane("Settings", id="settings"):
                yield ConfigForm(config, id="config-form")
                yield Static(FIELD_HELP_HINT, id="field-help")
            with TabPane("Dataset", id="dataset"), Horizontal(id="dataset-body"):
                with Vertical(id="dataset-files-pane", classes="pane"):
                    yield Label("Dataset files", classes="pane-title")
                    yield OptionList(id="dataset-files")
                with VerticalScroll(id="dataset-report-pane", classes="pane"):
                    yield Static("", id="dataset-summary")
                    yield Static("", id="dataset-records")
            with TabPane("Save & run", id="command"), VerticalScroll(id="command-body"):
                yield Static("", id="config-file", markup=False)
                yield Label("Run it headless:", classes="pane-title")
                yield Static("", id="train-command", markup=False)
                with Horizontal(id="config-buttons"):
                    yield Button("Save ^s", id="save", compact=True, variant="primary")
                    yield Button("Load ^o", id="load", compact=True)
                    yield Button("Copy command", id="copy", compact=True)
                    yield Button("Reset", id="reset", compact=True, variant="warning")
                yield Label("The YAML file:", classes="pane-title")
                yield Static("", id="config-yaml", markup=False)

    @property
    def form(self) -> ConfigForm:
        return self.query_one("#config-form", ConfigForm)

    def on_mount(self) -> None:
        self.studio_app.config_changed.subscribe(self, self._config_changed)
        self._show_config_state()
        self._find_datasets()

    # ---------------------------------------------------------------- form changes

    @on(ConfigForm.Changed)
    def _form_changed(self, event: ConfigForm.Changed) -> None:
        app = self.studio_app
        if event.config is not None:
            app.set_config(event.config)
        else:
            app.studio.config_problem = event.problem
            self._show_config_state()

    async def _config_changed(self, config: RunConfig) -> None:
        validation = self.form.validate()
        if validation.config != config and self.studio_app.studio.config_problem is None:
            await self.form.set_config(config)
        self._show_config_state()

    def _show_config_state(self) -> None:
        studio = self.studio_app.studio
        status = self.query_one("#config-status", Static)
        config = studio.config
        if studio.config_problem:
            status.update(f"{glyph('cross')} {studio.config_problem}")
            status.set_classes("-invalid")
        else:
            status.update(
                f"{glyph('check')} {config.model.source} · {config.method.name} · "
                f"{config.training_type} · {config.data.path}"
            )
            status.set_classes("-valid")
        command, unsaved = train_command_line(config, studio.config_file, studio.config_file_saved)
        file_line = self.query_one("#config-file", Static)
        if studio.config_file is None:
            file_line.update("Not saved to a file yet (ctrl+s saves it).")
        elif unsaved:
            file_line.update(f"File: {studio.config_file} (changed since saved: ctrl+s)")
        else:
            file_line.update(f"File: {studio.config_file} (saved)")
        self.query_one("#train-command", Static).update(command)
        self.query_one("#config-yaml", Static).update(dump_config(config).rstrip())
        self._highlight_dataset(config.data.path)
        self._schedule_preview()

    def _highlight_dataset(self, path: str) -> None:
        if path in self._dataset_paths:
            option_list = self.query_one("#dataset-files", OptionList)
            option_list.highlighted = self._dataset_paths.index(path)

    @on(ConfigForm.FieldFocused)
    def _field_focused(self, event: ConfigForm.FieldFocused) -> None:
        self.query_one("#field-help", Static).update(field_help(event.spec))

    def action_leave_field(self) -> None:
        """Escape from a field, so the number keys switch screens again."""
        self.query_one("#config-tabs", TabbedContent).query_one("Tabs").focus()

    def action_find_field(self) -> None:
        """`/`: jump to a field by name or meaning (31 tabs to learning_rate otherwise)."""
        from studio.ui.screens.field_search import FieldSearchScreen

        self.app.push_screen(FieldSearchScreen(list(self.form.specs.values())), self._jump_to)

    def _jump_to(self, path: str | None) -> None:
        if not path:
            return
        self.action_show_tab("settings")
        editor = self.query_one(f"#{editor_id(path)}")
        editor.focus()
        editor.scroll_visible(animate=False)

    def action_next_tab(self) -> None:
        tabs = self.query_one("#config-tabs", TabbedContent)
        order = ["settings", "dataset", "command"]
        tabs.active = order[(order.index(tabs.active) + 1) % len(order)]

    def action_show_tab(self, tab: str) -> None:
        self.query_one("#config-tabs", TabbedContent).active = tab

    # ---------------------------------------------------------------- dataset

    @work(thread=True, exclusive=True, group="dataset-files", exit_on_error=False)
    def _find_datasets(self) -> None:
        from studio.ui.data.dataset_files import find_datasets

        self.post_message(self.DatasetsFound(find_datasets(self.studio_app.services.workdir)))

    @on(DatasetsFound)
    def _datasets_found(self, message: DatasetsFound) -> None:
        self._dataset_paths = message.paths
        option_list = self.query_one("#dataset-files", OptionList)
        option_list.clear_options()
        option_list.add_options([Option(path, id=path) for path in message.paths])
        self._highlight_dataset(self.studio_app.studio.config.data.path)

    @on(OptionList.OptionSelected, "#dataset-files")
    def _dataset_picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            editor = self.query_one(f"#{editor_id('data.path')}", Input)
            editor.value = event.option.id  # the form validates and publishes the change

    def _schedule_preview(self) -> None:
        if self._preview_timer is not None:
            self._preview_timer.stop()
        self._preview_timer = self.set_timer(PREVIEW_DELAY, self._start_preview)

    def redraw_now(self) -> None:
        super().redraw_now()
        if self._preview_timer is not None:
            self._preview_timer.stop()
            self._start_preview()

    def _start_preview(self) -> None:
        self._preview_timer = None
        studio = self.studio_app.studio
        if studio.config_problem:
            return
        config = studio.config
        key = (
            config.data.model_dump_json(),
            config.training_type,
            config.model.source,
            config.model.chat_template,
        )
        if key == self._preview_key:
            return
        self._preview_key = key
        self.query_one("#dataset-summary", Static).update(f"reading {config.data.path}…")
        self._build_preview(config, key)

    @work(thread=True, exclusive=True, group="dataset", exit_on_error=False)
    def _build_preview(self, config: RunConfig, key: tuple) -> None:
        from studio.ui.data.corpus_preview import build_corpus_preview, is_document_source
        from studio.ui.data.dataset_preview import build_preview

        services = self.studio_app.services
        source = services.resolve(config.data.path)
        corpus = None
        if is_document_source(source):
            corpus = build_corpus_preview(config.data.path, source)
        # A folder or a PDF / HTML / Word file is not a dataset until prepared; a text file is
        # both (pre-training reads it as it is), so it gets both previews.
        preview = None
        if corpus is None or source.suffix.lower() in (".txt", ".md"):
            preview = build_preview(config, services.workdir)
        self.post_message(self.PreviewReady(preview, key, corpus))

    @on(PreviewReady)
    def _preview_ready(self, message: PreviewReady) -> None:
        if message.key != self._preview_key:
            return
        summary, records = Text(), Text()
        if message.preview is not None:
            summary, records = preview_texts(message.preview)
        if message.corpus is not None:
            corpus = corpus_preview_text(message.corpus)
            summary = corpus if message.preview is None else Text("\n").join((summary, corpus))
        self.query_one("#dataset-summary", Static).update(summary)
        self.query_one("#dataset-records", Static).update(records)

    # ---------------------------------------------------------------- file actions

    @on(Button.Pressed, "#save")
    def action_save_config(self) -> None:
        studio = self.studio_app.studio
        if studio.config_problem:
            self.notify(
                f"fix the config first: {studio.config_problem}", severity="error", markup=False
            )
            return
        self.app.push_screen(
            PathScreen(
                "Save the run config as YAML", studio.config_file or "run.yaml", action="Save"
            ),
            self._save_to,
        )

    def _save_to(self, path: str | None) -> None:
        from studio.config import save_config

        if not path:
            return
        app = self.studio_app
        target = app.services.resolve(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            save_config(app.studio.config, target)
        except OSError as error:
            self.app.push_screen(ErrorScreen("Could not save the config", str(error)))
            return
        app.studio.config_file = path
        app.studio.config_file_saved = app.studio.config
        app.settings.last_config = str(target)
        app.save_user_settings()
        self.notify(f"saved {path}", markup=False)
        self._show_config_state()

    @on(Button.Pressed, "#load")
    def action_load_config(self) -> None:
        from studio.ui.data.dataset_files import find_configs

        app = self.studio_app
        self.app.push_screen(
            PathScreen(
                "Load a run config (YAML)",
                app.studio.config_file or "",
                suggestions=find_configs(app.services.workdir),
                action="Load",
            ),
            self._load_from,
        )

    async def _load_from(self, path: str | None) -> None:
        from studio.config import load_config

        if not path:
            return
        app = self.studio_app
        target = app.services.resolve(path)
        try:
            config = load_config(target)
        except ConfigError as error:
            message = f"{error.location}: {error.message}" if error.location else error.message
            self.app.push_screen(
                ErrorScreen(
                    "Could not load the config", message, (error.advice,) if error.advice else ()
                )
            )
            return
        await self.form.set_config(config)
        app.studio.config_file = path
        app.studio.config_file_saved = config
        app.settings.last_config = str(target)
        app.save_user_settings()
        app.set_config(config)
        self.notify(f"loaded {path}", markup=False)

    @on(Button.Pressed, "#reset")
    async def action_reset_config(self) -> None:
        config = RunConfig()
        await self.form.set_config(config)
        self.studio_app.set_config(config)
        self.notify("every field is back to its default", markup=False)

    @on(Button.Pressed, "#copy")
    def action_copy_command(self) -> None:
        studio = self.studio_app.studio
        command, _ = train_command_line(studio.config, studio.config_file, studio.config_file_saved)
        self.app.copy_to_clipboard(command)
        self.notify("copied the command (through the terminal's clipboard, OSC 52)", markup=False)


def field_help(spec: FieldSpec) -> Text:
    """The focused field: path, description, default and allowed values."""
    text = Text()
    text.append(spec.path, style="bold")
    text.append(f"  {spec.description}")
    details = [f"default {spec.default!r}" if spec.default is not None else "default: empty"]
    if spec.choices:
        details.append("one of " + ", ".join(str(choice) for choice in spec.choices))
    elif spec.minimum is not None or spec.maximum is not None:
        low = "" if spec.minimum is None else f"{spec.minimum:g}"
        high = "" if spec.maximum is None else f"{spec.maximum:g}"
        details.append(f"range {low}..{high}")
    if spec.optional:
        details.append("may be left empty")
    text.append("\n" + " · ".join(details), style="italic")
    return text


def preview_texts(preview: DatasetPreview) -> tuple[Text, Text]:
    """(summary, records) for the Dataset tab."""
    summary = Text()
    if preview.error is not None:
        summary.append(f"{printable(preview.path)}\n", style="bold")
        summary.append(printable(preview.error))
        return summary, Text()
    report = preview.report
    assert report is not None
    summary.append(f"{report.path}\n", style="bold")
    summary.append(f"format {report.format or '?'} · {preview.kind or '?'}\n")
    summary.append(f"read {report.read} · kept {report.kept} · dropped {report.dropped_total}")
    if preview.eval_count:
        summary.append(f"\ntrain {preview.train_count} · eval {preview.eval_count}")
    if report.dropped:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(report.dropped.items()))
        summary.append(f"\ndropped: {reasons}")
        for line in report.problem_lines(limit=PROBLEMS_SHOWN):
            summary.append(f"\n  {printable(line.replace(report.path + ':', 'line ', 1))}")
    for note in report.notes:
        summary.append(f"\nnote: {note}", style="italic")
    if preview.note:
        summary.append(f"\nnote: {preview.note}", style="italic")
    records = Text()
    if preview.records:
        records.append("\nThe first records as the model reads them:", style="bold")
    for index, record in enumerate(preview.records, start=1):
        tokens = f" · {record.tokens} tokens" if record.tokens is not None else ""
        records.append(f"\n── record {index}{tokens} ──\n", style="bold")
        records.append(printable(record.text.rstrip("\n")))
    return summary, records


def corpus_preview_text(corpus: CorpusPreview) -> Text:
    """What `ftstudio data prepare` would do with the chosen documents, and its command."""
    text = Text()
    text.append(
        f"Documents: a trial of `ftstudio data prepare` on at most {PREVIEW_MAX_FILES} files "
        f"or {PREVIEW_MAX_SECONDS:g} s\n",
        style="bold",
    )
    if corpus.error is not None:
        text.append(f"{printable(corpus.source)}\n", style="bold")
        text.append(printable(corpus.error))
        return text
    text.append(printable(corpus.report_text))
    if corpus.kept_samples:
        text.append("\n\nKept text, e.g.:", style="bold")
    for source, sample in corpus.kept_samples:
        text.append(f"\n  {printable(source)}: ", style="italic")
        text.append(printable(sample))
    text.append("\n\nPrepare it for real, then set data.path to the output:\n", style="bold")
    text.append(printable(corpus.command))
    return text
