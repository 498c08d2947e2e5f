"""Changes to a run config: the one implementation behind every way a field is set from outside
the YAML file.

- `ftstudio train FILE --set key=value`, `ftstudio --config FILE --set key=value` and
  `ftstudio train --resume RUN --set key=value` parse their text with `parse_overrides`;
- the TUI (device choice, resume) and the out-of-memory triage pass typed values under the
  same dotted keys (`{"training.batch_size": 2}`).

All of them go through `apply_changes`, so the same key is checked the same way everywhere:
the section must exist, a field outside `method` must exist in its section, and a new method
name starts from that method's defaults (the old method's fields do not apply to it).
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from studio.config.fields import section_model
from studio.config.messages import EXPLAIN_ADVICE, invalid_config
from studio.config.methods import DEFAULT_METHOD
from studio.config.schema import RunConfig, config_to_dict
from studio.errors import ConfigError

EXAMPLE = "--set training.learning_rate=1e-4"


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` -> (key, value); the value is read as YAML, so `1e-4`, `true`, `null` and
    `[q_proj, v_proj]` have their types, and an empty value is the empty text."""
    key, sep, value_text = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"override '{text}' is not of the form key=value", advice=f"for example {EXAMPLE}"
        )
    if not value_text.strip():
        return key, ""
    import yaml

    try:
        return key, yaml.safe_load(value_text)
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise ConfigError(
            f"--set {key}={value_text}: the value is not valid YAML ({problem})",
            advice=f"write numbers as 1e-4, lists as [a, b], and quote text that YAML would "
            f"read otherwise: --set '{key}=\"{value_text}\"'",
        ) from None


def parse_overrides(texts: Iterable[str]) -> dict[str, Any]:
    """`key=value` texts as changes (dotted key -> value); a key given twice keeps the last."""
    changes: dict[str, Any] = {}
    for text in texts:
        key, value = parse_override(text)
        changes.pop(key, None)
        changes[key] = value
    return changes


def apply_changes(data: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of raw config `data` (as read from YAML) with `changes` applied.

    A change of method name (`method=NAME` or `method.name=NAME`) is applied first, whatever
    its place, so `method.rank=8 method=qlora` means qlora with rank 8. Raises `ConfigError`
    for a key that names no section or field."""
    result: dict[str, Any] = copy.deepcopy(dict(data))
    method_first = sorted(changes.items(), key=lambda item: not _names_method(item[0]))
    for key, value in method_first:
        parts = _checked_path(key, value)
        if _names_method(key):
            _switch_method(result, value)
            continue
        node = result
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                # `method: lora` written as a name: its fields go under that name.
                child = {"name": child} if part == "method" and isinstance(child, str) else {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return result


def config_from_dict(
    raw: Mapping[str, Any],
    overrides: Iterable[str] | None = None,
    *,
    source: str | Path | None = None,
    source_text: str | None = None,
) -> RunConfig:
    """Validate raw config data (`source` / `source_text`: the file it was read from, for the
    line numbers of errors) after applying `key=value` overrides."""
    changes = parse_overrides(overrides or ())
    return validated(
        apply_changes(raw, changes), source=source, source_text=source_text, overridden=changes
    )


def config_with_changes(config: RunConfig, changes: Mapping[str, Any]) -> RunConfig:
    """`config` with typed changes under dotted keys applied (`{"training.batch_size": 2}`)."""
    return validated(apply_changes(config_to_dict(config), changes), overridden=changes)


def validated(
    data: Mapping[str, Any],
    *,
    source: str | Path | None = None,
    source_text: str | None = None,
    overridden: Iterable[str] = (),
) -> RunConfig:
    """The `RunConfig` of raw data, or one `ConfigError` listing every problem."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        raise invalid_config(
            error, source=source, source_text=source_text, overridden=tuple(overridden)
        ) from None


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config data under dotted keys, the keys changes use:
    {"training": {"seed": 1}} -> {"training.seed": 1}; lists stay values."""
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def _names_method(key: str) -> bool:
    return key.strip() in ("method", "method.name")


def _switch_method(data: dict[str, Any], name: Any) -> None:
    """The method named `name`: the one in `data` when it is the same, else a new method with
    all its own defaults."""
    current = data.get("method", DEFAULT_METHOD)
    current_name = current.get("name") if isinstance(current, dict) else current
    if name != current_name or not isinstance(current, (dict, str)):
        data["method"] = {"name": name}


def _checked_path(key: str, value: Any) -> list[str]:
    """The parts of a dotted key that names a field of the run config."""
    parts = [part.strip() for part in key.split(".")]
    if not all(parts):
        raise ConfigError(f"cannot set '{key}': a key is section.field", advice=EXAMPLE)
    section, fields = parts[0], RunConfig.model_fields
    if section not in fields:
        raise ConfigError(
            f"cannot set {key}: unknown section '{section}'",
            advice=_did_you_mean(section, fields, "sections are"),
        )
    if section == "method":
        if len(parts) == 1 and not isinstance(value, str):
            raise ConfigError(
                f"cannot set {key}: method=NAME names a method",
                advice="set its fields one at a time: --set method.name=qlora --set method.rank=8",
            )
        if len(parts) > 2:
            raise ConfigError(f"cannot set {key}: method fields are method.FIELD")
        return parts  # which fields exist depends on the method: validation says
    model = section_model([section])
    if model is None:  # a plain value such as training_type
        if len(parts) > 1:
            raise ConfigError(
                f"cannot set {key}: {section} is a value, not a section",
                advice=f"--set {section}=VALUE",
            )
        return parts
    if len(parts) != 2:
        raise ConfigError(
            f"cannot set {key}: set one field of {section} at a time",
            advice=f"--set {section}.FIELD=VALUE; {EXPLAIN_ADVICE}",
        )
    known = model.model_fields
    if parts[1] not in known:
        raise ConfigError(
            f"cannot set {key}: {section} has no field '{parts[1]}'",
            advice=_did_you_mean(parts[1], known, f"fields of {section}"),
        )
    return parts


def _did_you_mean(word: str, choices: Iterable[str], listing: str) -> str:
    """The closest choice when one is close, else the list of them."""
    names = list(choices)
    close = difflib.get_close_matches(word, names, n=1)
    if close:
        return f"did you mean {close[0]}? ({EXPLAIN_ADVICE})"
    return f"{listing}: {', '.join(names)}"
