"""Introspection of the run config: every field with its description, default, type and bounds.

The TUI form and `ftstudio config --explain` are generated from this, so they never hold a
second copy of what the models in `studio.config` say.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from studio.config.methods import DEFAULT_METHOD, METHOD_SETTINGS
from studio.config.schema import RunConfig


@dataclass(frozen=True)
class FieldSpec:
    """One leaf field of the config, as a form or a help page needs it."""

    path: str
    description: str
    default: Any
    kind: str  # "bool", "int", "float", "str", "choice", "list"
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False


def section_model(loc: list[str]) -> type[BaseModel] | None:
    """The pydantic model of the section at `loc` (["training"], ["method"]...)."""
    model: type[BaseModel] = RunConfig
    for part in loc:
        if model is RunConfig and part == "method":
            return None if len(loc) > 1 else _method_union_hint()
        field = model.model_fields.get(part)
        if field is None:
            return None
        inner = _unwrap_model(field.annotation)
        if inner is None:
            return None
        model = inner
    return model


def _method_union_hint() -> type[BaseModel]:
    return METHOD_SETTINGS[DEFAULT_METHOD]


def field_bounds(loc: list[str]) -> tuple[float | None, float | None] | None:
    """(minimum, maximum) of the field at `loc`, or None when it has no bounds."""
    info = _field_info(loc)
    if info is None:
        return None
    low, high = _bounds_of(info)
    if low is None and high is None:
        return None
    return low, high


def _field_info(loc: list[str]) -> FieldInfo | None:
    if len(loc) >= 2 and loc[0] == "method":
        # loc is ["method", "<tag>", field] from pydantic or ["method", field] from users.
        tag, field_name = (loc[1], loc[2]) if len(loc) >= 3 else (None, loc[1])
        models = [METHOD_SETTINGS[tag]] if tag in METHOD_SETTINGS else METHOD_SETTINGS.values()
        for method_model in models:
            if field_name in method_model.model_fields:
                return method_model.model_fields[field_name]
        return None
    model = section_model(loc[:-1]) if len(loc) > 1 else RunConfig
    if model is None:
        return None
    return model.model_fields.get(loc[-1])


def _bounds_of(info: FieldInfo) -> tuple[float | None, float | None]:
    # annotated-types allows any comparable bound; ours are all numbers.
    low: Any = None
    high: Any = None
    for item in info.metadata:
        if isinstance(item, Ge):
            low = item.ge
        elif isinstance(item, Gt):
            low = item.gt
        elif isinstance(item, Le):
            high = item.le
        elif isinstance(item, Lt):
            high = item.lt
    return low, high


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def section_fields(model: type[BaseModel], prefix: str) -> list[FieldSpec]:
    """The leaf fields of one section model, with dotted paths under `prefix`."""
    specs = []
    for name, info in model.model_fields.items():
        if name == "name" and model in METHOD_SETTINGS.values():
            continue
        specs.append(_spec(f"{prefix}.{name}" if prefix else name, info))
    return specs


def all_fields(method_name: str | None = None) -> list[FieldSpec]:
    """Every leaf field of the run config; method fields for `method_name` (default: lora)."""
    specs: list[FieldSpec] = []
    for name, info in RunConfig.model_fields.items():
        if name == "method":
            specs.append(
                FieldSpec(
                    path="method.name",
                    description=info.description or "",
                    default=DEFAULT_METHOD,
                    kind="choice",
                    choices=tuple(METHOD_SETTINGS),
                )
            )
            specs.extend(section_fields(METHOD_SETTINGS[method_name or DEFAULT_METHOD], "method"))
            continue
        inner = _unwrap_model(info.annotation)
        if inner is not None:
            specs.extend(section_fields(inner, name))
        else:
            specs.append(_spec(name, info))
    return specs


def _spec(path: str, info: FieldInfo) -> FieldSpec:
    annotation = info.annotation
    optional = False
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        optional = True
        rest = [a for a in args if a is not type(None)]
        annotation = rest[0] if len(rest) == 1 else annotation
    kind, choices = _kind_of(annotation)
    low, high = _bounds_of(info)
    default = info.get_default(call_default_factory=True)
    return FieldSpec(
        path=path,
        description=info.description or "",
        default=default,
        kind=kind,
        choices=choices,
        minimum=low,
        maximum=high,
        optional=optional,
    )


def _kind_of(annotation: Any) -> tuple[str, tuple[Any, ...]]:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "choice", typing.get_args(annotation)
    if annotation is bool:
        return "bool", ()
    if annotation is int:
        return "int", ()
    if annotation is float:
        return "float", ()
    if annotation is str:
        return "str", ()
    if origin is list:
        return "list", ()
    if origin in (typing.Union, types.UnionType):
        literal_choices: list[Any] = []
        for arg in typing.get_args(annotation):
            if typing.get_origin(arg) is Literal:
                literal_choices.extend(typing.get_args(arg))
        return "list", tuple(literal_choices)
    return "str", ()


def explain() -> str:
    """A plain-text page of every field, for `ftstudio config --explain`."""
    lines = []
    for spec in all_fields():
        lines.append(_explain_line(spec))
    for name, model in METHOD_SETTINGS.items():
        if name == DEFAULT_METHOD:
            continue
        extra = section_fields(model, "method")
        if extra:
            lines.append(f"\n# method.name = {name}: {model.__doc__ or ''}".rstrip())
            lines.extend(_explain_line(spec) for spec in extra)
    return "\n".join(lines)


def _explain_line(spec: FieldSpec) -> str:
    allowed = ""
    if spec.choices:
        allowed = " one of " + "|".join(str(c) for c in spec.choices)
    elif spec.minimum is not None or spec.maximum is not None:
        allowed = f" range {spec.minimum if spec.minimum is not None else ''}.." + (
            f"{spec.maximum}" if spec.maximum is not None else ""
        )
    return f"{spec.path} (default {spec.default!r}{allowed})\n    {spec.description}"
