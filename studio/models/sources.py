"""Where a base model comes from: the built-in tiny model, a local folder, or a hub id.

Nothing here downloads: a hub id is only resolved to a name; transformers fetches it at load
time (respecting HF_HUB_OFFLINE), and the hub cache is scanned from disk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from studio.errors import ModelError
from studio.models.tiny import TINY_MODEL_NAME, ensure_tiny_model

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "tiny", "local" or "hub"
    name: str  # what the user wrote
    location: str  # folder for tiny/local, hub id for hub

    @property
    def is_local(self) -> bool:
        return self.kind in ("tiny", "local")


def resolve_model_source(source: str, *, build_tiny: bool = True) -> ModelSource:
    """Decide what `source` names, with a clear error when it names nothing usable."""
    if source == TINY_MODEL_NAME:
        from studio.models.tiny import tiny_model_dir

        folder = ensure_tiny_model() if build_tiny else tiny_model_dir()
        return ModelSource("tiny", source, str(folder))
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(
                f"model path is a file, not a folder: {source}",
                advice="point model.source at the folder holding config.json and the weights",
            )
        if not (path / "config.json").exists():
            raise ModelError(
                f"no config.json in model folder {source}",
                advice="a model folder is what save_pretrained writes: config.json, "
                "*.safetensors and the tokenizer files",
            )
        return ModelSource("local", source, str(path.resolve()))
    if source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source:
        raise ModelError(
            f"model folder not found: {source}",
            advice="check the path, or use 'tiny-demo' or a hub id such as "
            "'Qwen/Qwen2.5-0.5B-Instruct'",
        )
    if not HUB_ID.match(source):
        raise ModelError(
            f"'{source}' is neither a folder nor a hub id of the form owner/name",
            advice="use 'tiny-demo', a local folder, or a hub id such as "
            "'Qwen/Qwen2.5-0.5B-Instruct'",
        )
    return ModelSource("hub", source, source)


@dataclass(frozen=True)
class CachedModel:
    repo_id: str
    size_bytes: int
    path: str
    last_modified: float | None


def scan_hub_cache(cache_dir: str | Path | None = None) -> list[CachedModel]:
    """Models already in the Hugging Face cache, largest first; empty when there is none."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache_dir)
    except (CacheNotFound, OSError):
        return []
    models = []
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        revisions = sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True)
        if not revisions or not any(f.file_name == "config.json" for f in revisions[0].files):
            continue
        models.append(
            CachedModel(
                repo_id=repo.repo_id,
                size_bytes=repo.size_on_disk,
                path=str(revisions[0].snapshot_path),
                last_modified=repo.last_modified,
            )
        )
    return sorted(models, key=lambda m: m.size_bytes, reverse=True)
