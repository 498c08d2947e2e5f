"""The models ftstudio offers: the built-in tiny model, the folders and hub ids the user added
in the studio, and what the Hugging Face cache holds. The Models screen and the headless
`ftstudio models` list the same entries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
