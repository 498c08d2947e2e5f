"""Every YAML file ftstudio reads goes through one reader: a file that is missing, not UTF-8
or not YAML is one error naming the file and the line, whichever reader asked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from studio.config import load_config, read_yaml_file
from studio.data.corpus.settings import load_prepare_settings
from studio.errors import ConfigError
from studio.runs.catalog import read_config_mapping


def load_theme(path: Path) -> object:
    from studio.ui.chrome.themes import ThemeFileError, load_theme_file

    try:
        return load_theme_file(path)
    except ThemeFileError as error:  # the Themes screen lists these as text
        raise ConfigError(str(error)) from None


# Each reader, given the path of a YAML file named config.yaml (a run folder's name for it).
READERS: dict[str, Callable[[Path], object]] = {
    "run config": load_config,
    "run folder": lambda path: read_config_mapping(path.parent),
    "theme": load_theme,
    "prepare settings": load_prepare_settings,
}
DAMAGE = {
    "not YAML": (b"model:\n  source: tiny-demo\n  bad: [1, 2\n", "not valid YAML", 4),
    "not UTF-8": (b"model:\n  source: caf\xe9\n", "not UTF-8 text", 2),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
@pytest.mark.parametrize("reader", READERS, ids=list(READERS))
def test_every_reader_names_the_file_and_line(tmp_path: Path, reader: str, damage: str) -> None:
    content, problem, line = DAMAGE[damage]
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        READERS[reader](path)
    assert problem in str(caught.value) and f"{path}, line {line}" in str(caught.value)


def test_a_missing_file_names_it_with_advice(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        read_yaml_file(tmp_path / "gone.yaml", what="settings file", advice="write one")
    assert caught.value.location == str(tmp_path / "gone.yaml")
    assert caught.value.message == "settings file not found" and caught.value.advice == "write one"


def test_a_readable_file_gives_its_text_and_data(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("a: 1\n", encoding="utf-8")
    file = read_yaml_file(path)
    assert (file.text, file.data) == ("a: 1\n", {"a": 1})
