"""The run config as a form, generated from `studio.config.fields` (never a second copy).

One row per leaf field: a checkbox for booleans, a drop-down for enums, an input otherwise.
Only the chosen method's fields are shown; choosing another method swaps them, keeping the
values of fields both methods share. Every change is validated with the config model itself
and reported with `Changed`: the config when it is valid, the problem when it is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.validation import Integer, Number
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select

from studio.config import (
    FieldSpec,
    RunConfig,
    all_fields,
    config_from_dict,
    config_to_dict,
    flatten,
)
from studio.errors import ConfigError

SECTIONS: tuple[tuple[str, str], ...] = (
    ("model", "Model"),
    ("method", "Method"),
    ("data", "Data"),
    ("training", "Training"),
    ("preference", "Preference training (DPO / ORPO)"),
    ("output", "Output"),
    ("devices", "Devices (GPUs, processes)"),
)
FieldEvent = Input.Changed | Select.Changed | Checkbox.Changed
# Top-level fields shown inside a section.
SECTION_OF_TOP_LEVEL = {"training_type": "method", "report_to": "output"}


def section_of(path: str) -> str:
    head = path.split(".", 1)[0]
    return SECTION_OF_TOP_LEVEL.get(head, head)


def editor_id(path: str) -> str:
    return "field-" + path.replace(".", "-")


class FieldValueError(ValueError):
    """A field's text is not a value of its kind (e.g. 'abc' for a whole number)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


def value_text(spec: FieldSpec, value: Any) -> str:
    """A field's value as the input shows it."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def parse_text(spec: FieldSpec, text: str) -> Any:
    """The value an input's text means for this field; FieldValueError when it means none."""
    text = text.strip()
    if not text:
        if spec.optional:
            return None
        if spec.kind == "list":
            return []
        if spec.kind == "str":
            return ""
        raise FieldValueError(spec.path, "needs a value")
    if spec.kind == "int":
        try:
            return int(text.replace("_", ""))
        except ValueError:
            raise FieldValueError(spec.path, f"'{text}' is not a whole number") from None
    if spec.kind == "float":
        try:
            return float(text.replace("_", ""))
        except ValueError:
            raise FieldValueError(spec.path, f"'{text}' is not a number") from None
    if spec.kind == "list":
        if text in spec.choices:
            return text
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


@dataclass(frozen=True)
class Validation:
    config: RunConfig | None
    problem: str | None
    bad_paths: frozenset[str]


class FieldRow(Horizontal):
    """Label and editor of one field; the label is marked when the value is not the default."""

    def __init__(self, spec: FieldSpec, value: Any) -> None:
        super().__init__(classes="field-row")
        self.spec = spec
        self.value = value

    def compose(self) -> ComposeResult:
        name = self.spec.path.split(".", 1)[1] if "." in self.spec.path else self.spec.path
        yield Label(name, classes="field-label")
        yield make_editor(self.spec, self.value)


def make_editor(spec: FieldSpec, value: Any) -> Widget:
    identifier = editor_id(spec.path)
    tooltip = spec.description
    if spec.kind == "bool":
        editor: Widget = Checkbox("", bool(value), id=identifier, compact=True, tooltip=tooltip)
    elif spec.kind == "choice":
        options = [(str(choice), choice) for choice in spec.choices]
        editor = Select(
            options,
            value=value if value in spec.choices else Select.NULL,
            allow_blank=spec.optional,
            id=identifier,
            compact=True,
            tooltip=tooltip,
        )
    else:
        validators = []
        if spec.kind in ("int", "float"):
            low, high = spec.minimum, spec.maximum
            validators.append(Integer(low, high) if spec.kind == "int" else Number(low, high))
        editor = Input(
            value_text(spec, value),
            placeholder="(empty)" if spec.optional else "",
            validators=validators,
            valid_empty=spec.optional,
            id=identifier,
            compact=True,
            tooltip=tooltip,
            select_on_focus=False,
        )
    editor.add_class("field-editor")
    return editor


class ConfigForm(VerticalScroll):
    """Every field of the run config, grouped by section."""

    class Changed(Message):
        """A field changed; `config` is the new valid config or None with `problem`."""

        def __init__(self, form: ConfigForm, path: str, validation: Validation) -> None:
            super().__init__()
            self.form = form
            self.path = path
            self.config = validation.config
            self.problem = validation.problem

        @property
        def control(self) -> ConfigForm:
            return self.form

    class FieldFocused(Message):
        """The user moved to a field; the screen shows its description."""

        def __init__(self, spec: FieldSpec) -> None:
            super().__init__()
            self.spec = spec

    def __init__(self, config: RunConfig, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._initial = config
        self.method_name: str = config.method.name
        self.specs: dict[str, FieldSpec] = {}

    def compose(self) -> ComposeResult:
        values = flatten(config_to_dict(self._initial))
        specs = all_fields(self.method_name)
        self.specs = {spec.path: spec for spec in specs}
        for section, title in SECTIONS:
            yield Label(title, classes="form-section")
            section_specs = [spec for spec in specs if section_of(spec.path) == section]
            if section == "method":
                yield from self._rows([s for s in section_specs if not _is_method_field(s)], values)
                with Vertical(id="method-fields"):
                    yield from self._rows([s for s in section_specs if _is_method_field(s)], values)
            else:
                yield from self._rows(section_specs, values)

    def _rows(self, specs: list[FieldSpec], values: dict[str, Any]) -> ComposeResult:
        for spec in specs:
            row = FieldRow(spec, values.get(spec.path, spec.default))
            if values.get(spec.path, spec.default) != spec.default:
                row.add_class("-modified")
            yield row

    # ---------------------------------------------------------------- reading values

    def raw_values(self) -> dict[str, Any]:
        """The form as a nested dict of values; FieldValueError for unreadable text."""
        flat: dict[str, Any] = {}
        for path, spec in self.specs.items():
            flat[path] = self._editor_value(spec)
        raw: dict[str, Any] = {}
        for path, value in flat.items():
            node = raw
            parts = path.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        return raw

    def _editor_value(self, spec: FieldSpec) -> Any:
        editor = self.query_one(f"#{editor_id(spec.path)}")
        if isinstance(editor, Checkbox):
            return editor.value
        if isinstance(editor, Select):
            return None if editor.value is Select.NULL else editor.value
        assert isinstance(editor, Input)
        return parse_text(spec, editor.value)

    def validate(self) -> Validation:
        try:
            raw = self.raw_values()
        except FieldValueError as error:
            return Validation(None, str(error), frozenset({error.path}))
        try:
            return Validation(config_from_dict(raw), None, frozenset())
        except ConfigError as error:
            lines = [line.strip() for line in error.message.splitlines()[1:] if line.strip()]
            problem = "; ".join(lines) or error.message
            bad = frozenset(path for path in self.specs if any(f"{path} =" in x for x in lines))
            return Validation(None, problem, bad)

    # ---------------------------------------------------------------- writing values

    async def set_config(self, config: RunConfig) -> None:
        """Show `config` in the form (e.g. after loading a YAML file), without Changed."""
        if config.method.name != self.method_name:
            await self._swap_method_fields(config.method.name, keep_values=False)
        values = flatten(config_to_dict(config))
        with self.prevent(Input.Changed, Select.Changed, Checkbox.Changed):
            for path, spec in self.specs.items():
                self._set_editor(spec, values.get(path, spec.default))
        self._mark_rows(frozenset())

    def _set_editor(self, spec: FieldSpec, value: Any) -> None:
        editor = self.query_one(f"#{editor_id(spec.path)}")
        if isinstance(editor, Checkbox):
            editor.value = bool(value)
        elif isinstance(editor, Select):
            editor.value = value if value in spec.choices else Select.NULL
        elif isinstance(editor, Input):
            text = value_text(spec, value)
            if editor.value != text:
                editor.value = text
                # A new value is a new text: the cursor at its end, as when the field is
                # entered; kept where it was, ctrl+u would cut only part of it.
                editor.cursor_position = len(text)

    async def _swap_method_fields(self, method_name: str, keep_values: bool) -> None:
        old_values: dict[str, Any] = {}
        if keep_values:
            for path, spec in self.specs.items():
                if _is_method_field(spec):
                    try:
                        old_values[path] = self._editor_value(spec)
                    except FieldValueError:
                        continue
        self.method_name = method_name
        new_specs = [spec for spec in all_fields(method_name) if _is_method_field(spec)]
        self.specs = {p: s for p, s in self.specs.items() if not _is_method_field(s)}
        self.specs.update({spec.path: spec for spec in new_specs})
        container = self.query_one("#method-fields", Vertical)
        await container.remove_children()
        values = {spec.path: old_values.get(spec.path, spec.default) for spec in new_specs}
        await container.mount_all(list(self._rows(new_specs, values)))

    # ---------------------------------------------------------------- events

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    async def _field_changed(
        self, event: Input.Changed | Select.Changed | Checkbox.Changed
    ) -> None:
        event.stop()
        identifier = event.control.id or ""
        path = next((p for p in self.specs if editor_id(p) == identifier), None)
        if path is None:
            return
        if (
            path == "method.name"
            and isinstance(event, Select.Changed)
            and event.value is not Select.NULL
            and event.value != self.method_name
        ):
            await self._swap_method_fields(str(event.value), keep_values=True)
        validation = self.validate()
        self._mark_rows(validation.bad_paths)
        self.post_message(self.Changed(self, path, validation))

    def _mark_rows(self, bad_paths: frozenset[str]) -> None:
        for row in self.query(FieldRow):
            spec = row.spec
            try:
                value = self._editor_value(spec)
                unreadable = False
            except FieldValueError:
                value, unreadable = None, True
            row.set_class(unreadable or spec.path in bad_paths, "-invalid")
            row.set_class(not unreadable and value != spec.default, "-modified")

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        widget = event.widget
        for node in (widget, *widget.ancestors):
            if isinstance(node, FieldRow):
                self.post_message(self.FieldFocused(node.spec))
                return


def _is_method_field(spec: FieldSpec) -> bool:
    return spec.path.startswith("method.") and spec.path != "method.name"
