from __future__ import annotations

from pathlib import Path

import pytest

from studio.errors import ModelError
from studio.models.inspect import inspect_model_folder
from studio.models.sources import resolve_model_source, scan_hub_cache


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
