from __future__ import annotations

from pathlib import Path

import pytest

from studio.config import (
    METHOD_SETTINGS,
    RunConfig,
    all_fields,
    config_from_dict,
    dump_config,
    explain,
    field_bounds,
    load_config,
    save_config,
)
from studio.errors import ConfigError
from tests.conftest import SAMPLE_DATA


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_follow_the_source_material() -> None:
    config = RunConfig()
    assert config.model.source == "tiny-demo"
    assert config.method.name == "lora"
    assert config.method.effective_alpha == 2 * config.method.rank
    assert config.training.learning_rate == 3e-4
    assert field_bounds(["training", "learning_rate"]) == (1e-6, 1e-2)


def test_yaml_round_trip(tmp_path: Path) -> None:
    config = config_from_dict(
        {"method": {"name": "qlora", "rank": 8, "target_modules": ["q_proj", "v_proj"]}},
        ["training.scheduler=inverse_sqrt", "training.optimizer=paged_adamw_8bit"],
    )
    path = tmp_path / "saved.yaml"
    save_config(config, path)
    again = load_config(path)
    assert again == config
    assert dump_config(again) == dump_config(config)


def test_every_sample_config_is_valid() -> None:
    configs = sorted((SAMPLE_DATA / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        load_config(path)


def test_error_names_file_line_field_value_and_allowed_range(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  source: tiny-demo\ntraining:\n  learning_rate: 0.5\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert f"{path}, line 4" in text
    assert "training.learning_rate = 0.5" in text
    assert "1e-06..0.01" in text


def test_error_for_bad_choice_lists_the_choices(tmp_path: Path) -> None:
    path = write(tmp_path, "training:\n  scheduler: cosinus\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert "training.scheduler = 'cosinus'" in text
    for choice in ("linear", "cosine", "constant_with_warmup", "inverse_sqrt", "polynomial"):
        assert choice in text


def test_unknown_field_is_an_error_with_the_known_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "method:\n  name: lora\n  rnak: 8\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert "line 3" in text and "method.rnak: unknown field" in text and "rank" in text


def test_unknown_method_lists_methods(tmp_path: Path) -> None:
    path = write(tmp_path, "method: lorra\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "qlora" in str(caught.value) and "prefix_tuning" in str(caught.value)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("model: [1, 2\n", "not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ("training:\n  batch_size: many\n", "training.batch_size = 'many'"),
        ("output:\n  run_name: ../escape\n", "output.run_name"),
        ("training_type: dpo\nmethod: prompt_tuning\n", "does not support training_type"),
    ],
)
def test_malformed_configs_raise_config_errors(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert fragment in str(caught.value)


def test_missing_file_has_advice(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert caught.value.advice and "sample_data/configs" in caught.value.advice


def test_overrides() -> None:
    config = config_from_dict(
        {"method": {"name": "lora", "rank": 4}},
        ["method.rank=32", "training.learning_rate=1e-4", "training.packing=true"],
    )
    assert config.method.rank == 32
    assert config.training.learning_rate == 1e-4
    assert config.training.packing is True
    switched = config_from_dict({"method": {"name": "lora", "rank": 4}}, ["method=qlora"])
    assert switched.method.name == "qlora" and switched.method.rank == 16
    with pytest.raises(ConfigError, match="key=value"):
        config_from_dict({}, ["training.learning_rate"])
    with pytest.raises(ConfigError, match="unknown section"):
        config_from_dict({}, ["trainin.learning_rate=1"])


def test_every_field_has_a_description() -> None:
    for name in METHOD_SETTINGS:
        for spec in all_fields(name):
            assert spec.description, spec.path
    assert "method.rank" in explain() and "method.quant_type" in explain()
