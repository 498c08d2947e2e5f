"""The models the Models screen lists, and what it shows about one of them.

Both functions run on worker threads: listing scans the Hugging Face cache, describing builds
the model on the meta device (torch), so neither may run on the UI thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.models.catalog import KIND_LABELS, TINY_ENTRY, ModelEntry, list_models
from studio.models.inspect import ModelInfo


@dataclass(frozen=True)
class ModelDetails:
    """What the details pane shows: the inspection, or why there is none."""

    entry: ModelEntry
    info: ModelInfo | None
    note: str | None = None
    folder: str | None = None  # where config.json is, for the memory estimate
    device: str = "cuda"  # where a run would train here: the estimate is for that device


def describe_model(entry: ModelEntry) -> ModelDetails:
    """Inspect a model without loading its weights (imports torch: call it on a worker)."""
    from studio.models.inspect import inspect_model_folder
    from studio.ui.chrome.heavy_imports import ensure_ml_imports

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


__all__ = [
    "KIND_LABELS",
    "TINY_ENTRY",
    "ModelDetails",
    "ModelEntry",
    "describe_model",
    "list_models",
]
