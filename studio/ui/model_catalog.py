"""The models the Models screen lists, and what it shows about one of them.

Both functions run on worker threads: listing scans the Hugging Face cache, describing builds
the model on the meta device (torch), so neither may run on the UI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studio.models.inspect import ModelInfo
from studio.models.tiny import TINY_MODEL_NAME

KIND_LABELS = {
    "tiny": "built-in",
    "cache": "HF cache",
    "folder": "folder",
    "hub": "hub id",
}


@dataclass(frozen=True)
class ModelEntry:
    """One row of the model list."""

    source: str  # what goes into model.source
    kind: str  # tiny, cache, folder, hub
    folder: str | None = None  # the folder holding config.json, when it is on disk
    size_bytes: int | None = None

    @property
    def kind_label(self) -> str:
        return KIND_LABELS[self.kind]


@dataclass(frozen=True)
class ModelDetails:
    """What the details pane shows: the inspection, or why there is none."""

    entry: ModelEntry
    info: ModelInfo | None
    note: str | None = None
    folder: str | None = None  # where config.json is, for the memory estimate
    device: str = "cuda"  # where a run would train here: the estimate is for that device


TINY_ENTRY = ModelEntry(TINY_MODEL_NAME, "tiny")


def list_models(
    added: list[str], hub_cache_dir: Path | None, workdir: Path, scan_cache: bool = True
) -> list[ModelEntry]:
    """The built-in tiny model, the user's added models, then the Hugging Face cache."""
    entries = [TINY_ENTRY]
    seen = {TINY_MODEL_NAME}
    for source in added:
        if source in seen:
            continue
        seen.add(source)
        folder = Path(source).expanduser()
        if not folder.is_absolute():
            folder = workdir / folder
        if (folder / "config.json").exists():
            entries.append(ModelEntry(source, "folder", folder=str(folder)))
        else:
            entries.append(ModelEntry(source, "hub"))
    if scan_cache:
        from studio.models.sources import scan_hub_cache

        for cached in scan_hub_cache(hub_cache_dir):
            if cached.repo_id in seen:
                entries = [
                    ModelEntry(e.source, "cache", cached.path, cached.size_bytes)
                    if e.source == cached.repo_id
                    else e
                    for e in entries
                ]
                continue
            seen.add(cached.repo_id)
            entries.append(
                ModelEntry(
                    cached.repo_id, "cache", folder=cached.path, size_bytes=cached.size_bytes
                )
            )
    return entries


def describe_model(entry: ModelEntry) -> ModelDetails:
    """Inspect a model without loading its weights (imports torch: call it on a worker)."""
    from studio.models.inspect import inspect_model_folder
    from studio.ui.heavy_imports import ensure_ml_imports

    ensure_ml_imports()
    import torch

    # The engine trains on CUDA when there is one, else on the CPU (models.loading.plan_device);
    # the estimate must be the one the run will log.
    device = "cuda" if torch.cuda.is_available() else "cpu"

    if entry.kind == "tiny":
        from studio.models.tiny import ensure_tiny_model

        folder = ensure_tiny_model()
        info = inspect_model_folder(folder, entry.source)
        return ModelDetails(entry, info, folder=str(folder), device=device)
    if entry.folder is None:
        return ModelDetails(
            entry,
            None,
            "not downloaded yet: it is fetched from the hub when a run or a chat first loads "
            "it (or ahead of time with `hf download "
            f"{entry.source}`); its details show once it is in the cache",
        )
    info = inspect_model_folder(entry.folder, entry.source)
    return ModelDetails(entry, info, folder=entry.folder, device=device)
