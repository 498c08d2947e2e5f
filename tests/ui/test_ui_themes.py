"""The theme files: they load, and stay readable in a 16-colour terminal."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.color import Color, ColorSystem

from studio.ui.chrome.themes import (
    APP_VARIABLES,
    BUILTIN_THEMES_DIR,
    ThemeFileError,
    load_theme_file,
    load_themes,
)

THEME_FILES = sorted(BUILTIN_THEMES_DIR.glob("*.yaml"))


def ansi16(colour: str) -> int:
    """The colour a 16-colour terminal shows for this one."""
    return Color.parse(colour).downgrade(ColorSystem.STANDARD).number


def test_dark_light_and_high_contrast_ship() -> None:
    catalog = load_themes(BUILTIN_THEMES_DIR)
    assert catalog.problems == []
    assert set(catalog.names) == {"ftstudio-dark", "ftstudio-light", "ftstudio-high-contrast"}


@pytest.mark.parametrize("path", THEME_FILES, ids=lambda path: path.stem)
def test_readable_in_16_colours(path: Path) -> None:
    theme = load_theme_file(path)
    variables = {**APP_VARIABLES, **theme.variables}
    background = ansi16(theme.background)
    # Text, accents and states stay visible on the background.
    for name in ("foreground", "primary", "secondary", "accent", "error", "success", "warning"):
        assert ansi16(getattr(theme, name)) != background, name
    # Each plot's lines differ from the background and from each other.
    plots = (
        ("plot-train-loss", "plot-eval-loss"),
        ("plot-learning-rate",),
        (
            "plot-memory-used",
            "plot-memory-allocated",
            "plot-memory-reserved",
            "plot-memory-paged",
            "plot-memory-spilled",
        ),
        ("chat-user", "chat-adapter", "chat-base"),
    )
    for group in plots:
        colours = [ansi16(variables[name]) for name in group]
        assert background not in colours, group
        assert len(set(colours)) == len(colours), group
    # The states a user must tell apart.
    assert len({ansi16(theme.error), ansi16(theme.success), ansi16(theme.warning)}) == 3


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("primary: '#fff'\n", "'name' is missing"),
        ("name: x\n", "'primary' colour is missing"),
        ("name: x\nprimary: nope\n", "'nope' is not a colour"),
        ("name: x\nprimary: '#fff'\ncolour: red\n", "unknown key(s) colour"),
        ("name: x\nprimary: '#fff'\nvariables:\n  plot-train-loss: nope\n", "variables.plot"),
        ("name: [x\n", "line"),
    ],
)
def test_bad_theme_files_say_what_is_wrong(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ThemeFileError, match=r"bad\.yaml") as caught:
        load_theme_file(path)
    assert problem in str(caught.value)
    catalog = load_themes(BUILTIN_THEMES_DIR, tmp_path)
    assert len(catalog.problems) == 1 and "ftstudio-dark" in catalog.names
