"""Reading the files of a run folder without trusting them.

A run folder is written by ftstudio, but also copied, hand-edited, half-synced, torn by a
full disk or a crash, and written by older versions. Everything that reads status.json,
metrics.jsonl, telemetry.jsonl or the JSON notes of a run goes through these functions: they
never raise for what a file holds, they say what is wrong with it instead (`problem`), and the
typed getters never trust a field's type. A damaged run then shows as damaged with the reason;
it never breaks a listing, a follower or a resume.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.formatting import MIB

# Run notes (status.json, markers, method notes) are small; anything bigger is not one.
MAX_NOTE_BYTES = 16 * MIB


@dataclass(frozen=True)
class JsonObject:
    """A JSON file that should hold one object: its `data` ({} when it does not) and, when it
    does not, the `problem` in words (None for a good file)."""

    data: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    missing: bool = False


def read_json_object(path: Path) -> JsonObject:
    """The object in a JSON file, or an empty one and what is wrong; never raises."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_NOTE_BYTES + 1)
    except FileNotFoundError:
        return JsonObject(problem=f"{path.name} is missing", missing=True)
    except IsADirectoryError:
        return JsonObject(problem=f"{path.name} is a folder, not a file")
    except OSError as error:
        return JsonObject(problem=f"cannot read {path.name}: {error.strerror or error}")
    if len(raw) > MAX_NOTE_BYTES:
        return JsonObject(problem=f"{path.name} is larger than {MAX_NOTE_BYTES // MIB} MiB")
    if not raw.strip():
        return JsonObject(problem=f"{path.name} is empty")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return JsonObject(problem=f"{path.name} is not UTF-8 text")
    except RecursionError:
        return JsonObject(problem=f"{path.name} is nested too deeply")
    except ValueError as error:
        return JsonObject(problem=f"{path.name} is not valid JSON ({error})")
    if not isinstance(data, dict):
        return JsonObject(problem=f"{path.name} holds {_kind(data)}, not a JSON object")
    return JsonObject(data)


def read_jsonl_objects(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON Lines file that is a JSON object; torn, non-UTF-8 and non-object
    lines (a crash mid-write, a hand edit) are skipped."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    records = []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    return "null" if value is None else type(value).__name__


# ---------------------------------------------------------------- typed fields

_TYPE_NAMES = {str: "text", int: "a whole number", float: "a number", dict: "an object"}


def wrong_field(data: dict[str, Any], expected: dict[str, type]) -> str | None:
    """The first field of `data` whose value is not of its `expected` type (None and missing
    fields are fine), as a sentence; None when every field fits. float accepts ints too."""
    for key, kind in expected.items():
        value = data.get(key)
        if value is None:
            continue
        if kind is float:
            fits = number_field(data, key) is not None
        elif kind is int:
            fits = int_field(data, key) is not None
        else:
            fits = isinstance(value, kind)
        if not fits:
            return f"`{key}` is not {_TYPE_NAMES.get(kind, kind.__name__)}"
    return None


def number_field(data: Any, key: str) -> float | None:
    """A finite number at `key` of a mapping, else None (missing, a string, NaN, a list)."""
    value = data.get(key) if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def int_field(data: Any, key: str, default: int | None = None) -> int | None:
    """A whole number at `key` (an int, or a float with no fraction), else `default`."""
    value = number_field(data, key)
    if value is None or value != int(value):
        return default
    return int(value)


def str_field(data: Any, key: str) -> str | None:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def mapping_field(data: Any, key: str) -> dict[str, Any]:
    """The mapping at `key`, or {} when there is none or it is something else."""
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def str_list_field(data: Any, key: str) -> list[str]:
    value = data.get(key) if isinstance(data, dict) else None
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value] if isinstance(value, list) else []
