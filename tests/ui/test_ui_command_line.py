"""The Config screen's `ftstudio train` line reproduces the config when it is run."""

from __future__ import annotations

import shlex

from studio.config import RunConfig, config_from_dict, config_to_dict, load_config
from studio.ui.config.command_line import overrides_between, train_command_line
from tests.conftest import SAMPLE_DATA

QUICKSTART = SAMPLE_DATA / "configs" / "quickstart.yaml"


def changed(config: RunConfig, **sections) -> RunConfig:
    data = config_to_dict(config)
    for section, values in sections.items():
        if isinstance(values, dict) and section != "method":
            data[section] = {**data.get(section, {}), **values}
        else:
            data[section] = values
    return config_from_dict(data)


def replay(base: RunConfig, command: str) -> RunConfig:
    """What `ftstudio train` would build from the line: base config plus its --set values."""
    words = shlex.split(command.split("&&")[-1])
    overrides = [words[i + 1] for i, word in enumerate(words) if word == "--set"]
    return config_from_dict(config_to_dict(base), overrides)


def test_saved_and_unchanged_is_just_the_file() -> None:
    config = load_config(QUICKSTART)
    command, needs_save = train_command_line(config, "quickstart.yaml", config)
    assert command == "ftstudio train quickstart.yaml"
    assert not needs_save


def test_changes_become_set_overrides_that_round_trip() -> None:
    saved = load_config(QUICKSTART)
    target = changed(
        saved,
        method={"name": "qlora", "rank": 8, "target_modules": ["q_proj", "v_proj"]},
        training={"learning_rate": 1e-4, "max_steps": 40},
        data={"system_prompt": "You are terse: answer in one line.", "eval_path": None},
    )
    command, needs_save = train_command_line(target, "run.yaml", saved)
    assert needs_save
    assert command.startswith("ftstudio train run.yaml --set method.name=qlora")
    assert replay(saved, command) == target


def test_switching_away_and_back_to_defaults_round_trips() -> None:
    saved = changed(RunConfig(), method={"name": "freeze", "trainable_layers": 4})
    assert saved.method.name == "freeze"
    target = changed(saved, method={"name": "lora"}, training={"seed": 7})
    assert replay(saved, train_command_line(target, "f.yaml", saved)[0]) == target
    assert overrides_between(target, target) == []


def test_without_a_file_the_defaults_are_written_first() -> None:
    target = changed(RunConfig(), training={"epochs": 1.5})
    command, needs_save = train_command_line(target, None, None)
    assert needs_save
    assert command == (
        "ftstudio config --defaults > run.yaml && ftstudio train run.yaml --set training.epochs=1.5"
    )
    assert replay(RunConfig(), command) == target
