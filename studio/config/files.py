"""YAML files: the run config in and out, and the one reader every YAML file of ftstudio goes
through (run configs, run folders' config.yaml, themes, data-preparation settings), so that a
file that cannot be read, is not UTF-8 or is not YAML is one `ConfigError` naming the file and
the line."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.config.overrides import config_from_dict
from studio.config.schema import RunConfig, config_to_dict
from studio.errors import ConfigError

NOT_UTF8 = "not UTF-8 text"


@dataclass(frozen=True)
class YamlFile:
    path: Path
    text: str
    data: Any  # what the document holds: a mapping, a list, a scalar; None when empty


def read_yaml_file(
    path: str | Path,
    *,
    what: str = "file",
    advice: str | None = None,
    missing_advice: str | None = None,
) -> YamlFile:
    """Read and parse one YAML file. Every way it can fail is a `ConfigError` whose location
    is the file, and the line where the bytes or PyYAML tell it; `what` names the file in the
    message ("config file"), `advice` says how to fix it (`missing_advice` when it is not
    there)."""
    import yaml

    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{what} not found", advice=missing_advice or advice, location=str(path)
        ) from None
    except OSError as error:
        raise ConfigError(
            f"cannot read {what}: {error.strerror or error}", advice=advice, location=str(path)
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"{what} is {NOT_UTF8}", advice=advice, location=f"{path}, line {line}"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(
            f"{what} is not valid YAML: {problem}", advice=advice, location=where
        ) from None
    except (ValueError, RecursionError) as error:
        # PyYAML's own limits (a huge integer, nesting too deep) surface as these.
        raise ConfigError(
            f"{what} is not valid YAML: {type(error).__name__}", advice=advice, location=str(path)
        ) from None
    return YamlFile(path, text, data)


def load_config(path: str | Path, overrides: Iterable[str] | None = None) -> RunConfig:
    """Read a run config from YAML, apply `key=value` overrides, and validate it.

    Every problem comes back as one `ConfigError` naming the file, line, field, value and what
    is allowed.
    """
    file = read_yaml_file(
        path,
        what="config file",
        missing_advice="check the path; sample configs are in sample_data/configs/",
    )
    raw = {} if file.data is None else file.data
    if not isinstance(raw, dict):
        raise ConfigError(
            "a run config must be a mapping of sections (model:, method:, data:, ...)",
            location=str(file.path),
        )
    return config_from_dict(raw, overrides, source=file.path, source_text=file.text)


def dump_config(config: RunConfig) -> str:
    import yaml

    return yaml.safe_dump(config_to_dict(config), sort_keys=False, allow_unicode=True)


def save_config(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(dump_config(config), encoding="utf-8")
