"""Theme files: `themes/*.yaml` shipped with ftstudio and the user's own in the config folder.

Each file describes one `textual.theme.Theme`:

    name: ftstudio-dark
    dark: true
    primary: "#5f87d7"
    ...                       # secondary, accent, foreground, background, surface, panel,
                              # warning, error, success, boost (all optional but primary)
    variables:                # Textual's own variables and ftstudio's (APP_VARIABLES)
      plot-train-loss: "#5fd7ff"

A file that cannot be read, is not valid YAML, misses `name` / `primary`, has an unknown key or
a colour Textual cannot parse is skipped with a message naming the file and the problem; the
studio then falls back to its default theme.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

from studio.config.files import read_yaml_file
from studio.errors import ConfigError

BUILTIN_THEMES_DIR = Path(__file__).resolve().parents[3] / "themes"

COLOUR_KEYS = (
    "primary",
    "secondary",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
    "warning",
    "error",
    "success",
)
OTHER_KEYS = ("name", "dark", "luminosity_spread", "text_alpha", "variables")

# ftstudio's own variables, with the value used when a theme leaves one out. The .tcss files
# and the plots read colours only through these.
APP_VARIABLES: dict[str, str] = {
    "plot-train-loss": "#5fafff",
    "plot-eval-loss": "#ffaf00",
    "plot-learning-rate": "#87d787",
    "plot-memory-used": "#ff5f87",
    "plot-memory-allocated": "#5fd7d7",
    "plot-memory-reserved": "#d7af5f",
    "plot-memory-paged": "#87d787",
    "plot-memory-spilled": "#ff8700",
    "chat-user": "#87afd7",
    "chat-adapter": "#87d787",
    "chat-base": "#d7af5f",
}


class ThemeFileError(ValueError):
    """A theme file that cannot be used; the message names the file and the problem."""


@dataclass
class ThemeCatalog:
    """The themes that loaded, and one message per theme file that did not."""

    themes: list[Theme] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [theme.name for theme in self.themes]


def theme_from_data(data: Any, source: str) -> Theme:
    """Build a Theme from a theme file's parsed YAML; ThemeFileError on any problem."""
    if not isinstance(data, dict):
        raise ThemeFileError(f"{source}: a theme file must be a mapping of keys to values")
    unknown = sorted(set(data) - set(COLOUR_KEYS) - set(OTHER_KEYS))
    if unknown:
        raise ThemeFileError(
            f"{source}: unknown key(s) {', '.join(unknown)}; allowed: "
            f"{', '.join((*OTHER_KEYS, *COLOUR_KEYS))}"
        )
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ThemeFileError(f"{source}: 'name' is missing or empty")
    if "primary" not in data:
        raise ThemeFileError(f"{source}: 'primary' colour is missing")
    colours: dict[str, Any] = {}
    for key in COLOUR_KEYS:
        if data.get(key) is not None:
            colours[key] = _colour(data[key], f"{source}: {key}")
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise ThemeFileError(f"{source}: 'variables' must be a mapping of names to values")
    for key, value in variables.items():
        if key in APP_VARIABLES:
            _colour(value, f"{source}: variables.{key}")
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ThemeFileError(f"{source}: 'dark' must be true or false")
    extra: dict[str, Any] = {}
    for key in ("luminosity_spread", "text_alpha"):
        if key in data:
            if not isinstance(data[key], (int, float)):
                raise ThemeFileError(f"{source}: '{key}' must be a number")
            extra[key] = float(data[key])
    return Theme(
        name=name.strip(),
        dark=dark,
        variables={str(key): str(value) for key, value in variables.items()},
        **colours,
        **extra,
    )


def _colour(value: Any, where: str) -> str:
    text = str(value)
    try:
        Color.parse(text)
    except ColorParseError:
        raise ThemeFileError(f"{where}: '{text}' is not a colour (use e.g. '#5f87d7')") from None
    return text


def load_theme_file(path: Path) -> Theme:
    try:
        file = read_yaml_file(path, what="theme file")
    except ConfigError as error:
        raise ThemeFileError(str(error)) from None
    return theme_from_data(file.data, str(path))


def load_themes(*folders: Path) -> ThemeCatalog:
    """Every `*.yaml` theme in `folders`, in order; a later theme of the same name wins."""
    catalog = ThemeCatalog()
    by_name: dict[str, Theme] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.yaml")):
            try:
                theme = load_theme_file(path)
            except ThemeFileError as error:
                catalog.problems.append(str(error))
                continue
            by_name[theme.name] = theme
    catalog.themes = list(by_name.values())
    return catalog


def theme_colour(variables: dict[str, str], name: str) -> tuple[int, int, int]:
    """An RGB triple of one of the app's colour variables (for plotext, which wants RGB)."""
    value = variables.get(name) or APP_VARIABLES[name]
    try:
        return Color.parse(value).rgb
    except ColorParseError:
        return Color.parse(APP_VARIABLES[name]).rgb
