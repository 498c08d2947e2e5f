"""The user's studio settings: chosen theme, added model folders, last config file.

Kept in `$XDG_CONFIG_HOME/ftstudio/settings.yaml` (default `~/.config/ftstudio/`). A missing
file gives the defaults; an unreadable one gives the defaults and a message saying why, so a
broken settings file never stops the studio from opening.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_THEME = "ftstudio-dark"
SETTINGS_FILE = "settings.yaml"


def config_dir() -> Path:
    """`$XDG_CONFIG_HOME/ftstudio`, or `~/.config/ftstudio` when the variable is unset."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "ftstudio"


def cache_root() -> Path:
    """Where ftstudio keeps what it builds: $FTSTUDIO_CACHE_DIR or ~/.cache/ftstudio."""
    configured = os.environ.get("FTSTUDIO_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ftstudio"


def settings_path() -> Path:
    return config_dir() / SETTINGS_FILE


def user_themes_dir() -> Path:
    """Where users drop their own theme files (`*.yaml`)."""
    return config_dir() / "themes"


@dataclass
class UserSettings:
    """What the studio remembers between sessions."""

    theme: str = DEFAULT_THEME
    added_models: list[str] = field(default_factory=list)
    last_config: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserSettings:
        known = {item.name for item in fields(cls)}
        settings = cls(**{key: value for key, value in data.items() if key in known})
        if not isinstance(settings.theme, str) or not settings.theme:
            settings.theme = DEFAULT_THEME
        if not isinstance(settings.added_models, list):
            settings.added_models = []
        settings.added_models = [str(folder) for folder in settings.added_models]
        if settings.last_config is not None:
            settings.last_config = str(settings.last_config)
        return settings


def load_settings(path: Path | None = None) -> tuple[UserSettings, str | None]:
    """(settings, problem): `problem` says why the file could not be used, else None."""
    import yaml

    path = path or settings_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return UserSettings(), None
    except OSError as error:
        return UserSettings(), f"cannot read {path}: {error}; using default settings"
    try:
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            raise ValueError("expected a mapping of settings")
        return UserSettings.from_dict(data), None
    except (yaml.YAMLError, ValueError, TypeError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        return UserSettings(), f"{path} is not valid ({first_line}); using default settings"


def save_settings(settings: UserSettings, path: Path | None = None) -> str | None:
    """Write the settings; returns a problem message instead of raising."""
    import yaml

    path = path or settings_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.saving")
        temporary.write_text(yaml.safe_dump(asdict(settings), sort_keys=False), encoding="utf-8")
        temporary.replace(path)
    except OSError as error:
        return f"cannot save settings to {path}: {error}"
    return None
