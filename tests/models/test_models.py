from __future__ import annotations

from pathlib import Path

import pytest

from studio.errors import ModelError
from studio.models.inspect import inspect_model_folder
from studio.models.sources import resolve_model_source, scan_hub_cache
from tests.support.cli import studio_process


def test_tiny_model_info_without_loading_weights(tiny_model_dir: Path) -> None:
    info = inspect_model_folder(tiny_model_dir, name="tiny-demo")
    assert info.architecture == "LlamaForCausalLM"
    assert info.num_layers == 4 and info.hidden_size == 128
    assert info.has_chat_template
    assert info.size_on_disk == (tiny_model_dir / "model.safetensors").stat().st_size
    # 4 bytes per float32 parameter, plus the small safetensors header.
    assert 0 < info.size_on_disk - 4 * info.num_parameters < 10_000


def test_sources(tmp_path: Path, tiny_model_dir: Path) -> None:
    assert resolve_model_source("tiny-demo").kind == "tiny"
    assert resolve_model_source(str(tiny_model_dir)).kind == "local"
    assert resolve_model_source("Qwen/Qwen2.5-0.5B-Instruct").kind == "hub"
    with pytest.raises(ModelError, match="not found"):
        resolve_model_source(str(tmp_path / "missing"))
    with pytest.raises(ModelError, match=r"no config\.json"):
        resolve_model_source(str(tmp_path))
    with pytest.raises(ModelError, match="neither a folder nor a hub id"):
        resolve_model_source("not a model")


def test_hub_cache_scan_lists_cached_models(tmp_path: Path, tiny_model_dir: Path) -> None:
    # Lay out a cache the way huggingface_hub does: blobs, snapshots and refs.
    repo = tmp_path / "models--acme--tiny"
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    blobs = repo / "blobs"
    blobs.mkdir()
    for name in ("config.json", "model.safetensors"):
        blob = blobs / name.replace(".", "_")
        blob.write_bytes((tiny_model_dir / name).read_bytes())
        (snapshot / name).symlink_to(blob)
    (cached,) = scan_hub_cache(tmp_path)
    assert cached.repo_id == "acme/tiny"
    assert cached.size_bytes > 3_000_000
    assert inspect_model_folder(cached.path).architecture == "LlamaForCausalLM"
    assert scan_hub_cache(tmp_path / "empty") == []


def test_models_command_lists_folders_added_in_the_studio(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """Headless `ftstudio models` shows what the Models screen added, from the same settings."""
    import os

    from studio.user_settings import UserSettings, save_settings

    config_home = tmp_path / "config"
    added = str(tiny_model_dir)
    problem = save_settings(
        UserSettings(added_models=[added, "acme/not-downloaded"]),
        config_home / "ftstudio" / "settings.yaml",
    )
    assert problem is None
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home), "HF_HOME": str(tmp_path / "hf")}
    result = studio_process("models", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("tiny-demo") and "built-in" in lines[0]
    folder = next(line for line in lines if line.startswith(added))
    assert " folder " in folder and "MiB" in folder
    hub = next(line for line in lines if line.startswith("acme/not-downloaded"))
    assert "hub id" in hub and "not on disk" in hub
