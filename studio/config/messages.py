"""Run-config errors as a user reads them: file, line (or the `--set` that gave the value),
field, the value given, and what is allowed."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from studio.config.fields import field_bounds, section_model
from studio.config.methods import METHOD_NAMES, METHOD_SETTINGS
from studio.errors import ConfigError

EXPLAIN_ADVICE = "see the field descriptions with `ftstudio config --explain`"


def invalid_config(
    error: ValidationError,
    *,
    source: str | Path | None = None,
    source_text: str | None = None,
    overridden: Collection[str] = (),
) -> ConfigError:
    """The `ConfigError` for a config that failed validation."""
    text = format_validation_error(
        error, source=source, source_text=source_text, overridden=overridden
    )
    return ConfigError(text, advice=EXPLAIN_ADVICE)


def format_validation_error(
    error: ValidationError,
    *,
    source: str | Path | None = None,
    source_text: str | None = None,
    overridden: Collection[str] = (),
) -> str:
    """One line per problem: where the value came from, field, the value given, and what is
    allowed. A field set by an override (dotted key in `overridden`) is blamed on `--set`, not
    on the line of the file it replaced."""
    lines_by_path = _yaml_key_lines(source_text) if source_text else {}
    problems = []
    for item in error.errors():
        raw_loc = [str(part) for part in item["loc"]]
        loc = [part for part in raw_loc if not _is_union_tag(part)]
        field = ".".join(loc) or "(top level)"
        where = ""
        if _set_by_override(field, overridden):
            where = "--set "
        elif source is not None:
            line = _nearest_line(lines_by_path, tuple(loc))
            where = f"{source}, line {line}: " if line else f"{source}: "
        value = item.get("input")
        message = _allowed_text(item)
        if item["type"] == "missing":
            problems.append(f"{where}{field}: required field is missing")
        elif item["type"] == "extra_forbidden":
            problems.append(f"{where}{field}: unknown field ({_known_fields_hint(raw_loc)})")
        else:
            problems.append(f"{where}{field} = {value!r}: {message}")
    count = len(problems)
    head = "invalid run config" if count == 1 else f"invalid run config ({count} problems)"
    return head + "\n  " + "\n  ".join(problems)


def _set_by_override(field: str, overridden: Collection[str]) -> bool:
    # `method.name=x` sets the `method` pydantic complains about; `method=x` its fields.
    return any(
        field == key or field.startswith(key + ".") or key.startswith(field + ".")
        for key in overridden
    )


def _is_union_tag(part: Any) -> bool:
    # Discriminated unions insert the tag ('lora') into the location; users never wrote it.
    return isinstance(part, str) and part in METHOD_NAMES


def _allowed_text(item: Mapping[str, Any]) -> str:
    ctx = item.get("ctx") or {}
    kind = item["type"]
    if kind == "literal_error" and "expected" in ctx:
        return f"must be one of {ctx['expected']}"
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
        return _bounds_text(item)
    if kind == "union_tag_invalid":
        return f"unknown method; choose one of {ctx.get('expected_tags')}"
    message = str(item.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def _bounds_text(item: Mapping[str, Any]) -> str:
    loc = [str(p) for p in item["loc"]]
    bounds = field_bounds(loc)
    text = str(item.get("msg", "out of range")).lower()
    if bounds:
        low, high = bounds
        allowed = f"{low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
        text += f" (allowed: {allowed})"
    return text


def _known_fields_hint(raw_loc: list[str]) -> str:
    """The fields of the section an unknown field was written in; for `method`, of the
    method named (pydantic puts its name, the union tag, in the location)."""
    if len(raw_loc) >= 3 and raw_loc[0] == "method" and raw_loc[1] in METHOD_SETTINGS:
        fields = [name for name in METHOD_SETTINGS[raw_loc[1]].model_fields if name != "name"]
        return f"{raw_loc[1]} has: " + (", ".join(fields) or "no settings")
    model = section_model(raw_loc[:-1])
    if model is None:
        return "not a config field"
    return "known fields: " + ", ".join(model.model_fields)


def _yaml_key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path in a YAML document to the 1-based line it is written on."""
    import yaml

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key_path = (*path, str(key_node.value))
                lines[key_path] = key_node.start_mark.line + 1
                walk(value_node, key_path)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                item_path = (*path, str(index))
                lines[item_path] = item.start_mark.line + 1
                walk(item, item_path)

    walk(root, ())
    return lines


def _nearest_line(lines: dict[tuple[str, ...], int], path: tuple[str, ...]) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None
