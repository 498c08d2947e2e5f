"""The config the studio opens with: the quickstart on the tiny model, dropped for real models."""

from __future__ import annotations

from studio.config import RunConfig, TrainingSettings, load_config
from studio.ui.chrome.state import StudioState
from studio.ui.config.starter import starter_config, with_base_model
from tests.conftest import REPO


def test_the_studio_opens_with_the_quickstart_config() -> None:
    quickstart = load_config(REPO / "sample_data" / "configs" / "quickstart.yaml")
    assert starter_config() == quickstart
    assert StudioState().config == quickstart


def test_leaving_the_tiny_model_untouched_restores_general_defaults() -> None:
    config, generalised = with_base_model(starter_config(), "meta-llama/Llama-3.2-1B")
    assert generalised
    assert config.model.source == "meta-llama/Llama-3.2-1B"
    assert config.training == TrainingSettings()
    assert config.method == RunConfig().method
    assert config.data == starter_config().data  # the dataset choice stays


def test_settings_the_user_changed_are_kept() -> None:
    edited = starter_config().model_copy(
        update={"training": starter_config().training.model_copy(update={"epochs": 2.0})}
    )
    config, generalised = with_base_model(edited, "Qwen/Qwen2.5-0.5B")
    assert not generalised
    assert config.training.epochs == 2.0 and config.training.learning_rate == 0.003


def test_moving_between_real_models_changes_only_the_model() -> None:
    real = RunConfig().model_copy(
        update={"model": RunConfig().model.model_copy(update={"source": "a/b"})}
    )
    config, generalised = with_base_model(real, "c/d")
    assert not generalised and config.model.source == "c/d"
    assert config.training == real.training


def test_back_to_the_tiny_model_untouched_restores_the_quickstart() -> None:
    # Bug: tiny -> another model -> tiny again left the general defaults (1e-4, 3 epochs).
    away, _ = with_base_model(starter_config(), "meta-llama/Llama-3.2-1B")
    back, note = with_base_model(away, "tiny-demo")
    assert note
    assert back == starter_config()


def test_back_to_the_tiny_model_keeps_what_the_user_changed() -> None:
    away, _ = with_base_model(starter_config(), "a/b")
    edited = away.model_copy(
        update={"training": away.training.model_copy(update={"learning_rate": 5e-4})}
    )
    back, note = with_base_model(edited, "tiny-demo")
    assert not note and back.training.learning_rate == 5e-4
