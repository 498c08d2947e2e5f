"""Datasets that are not one file: a folder written by `datasets.save_to_disk`, a folder of
Parquet / JSON Lines / JSON / CSV shards, and hub datasets (whole or streamed).

A shard folder is read file by file with the ordinary readers, so every dropped record keeps
its `FILE:LINE`. Shards named for a split (`train-00000-of-00002.parquet`, `test.jsonl`,
`validation/part-0.jsonl`, as on the hub) are filtered by `data.split`.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path
from typing import Any

from studio.data.readers import SUPPORTED_SUFFIXES, RawFile, RawRecord, read_dataset_file
from studio.errors import DataError

_STRUCTURED = frozenset({".json", ".jsonl", ".ndjson", ".csv", ".parquet"})
_SPLIT_NAMES = frozenset({"train", "test", "validation", "valid", "dev", "eval"})


def is_saved_dataset(folder: Path) -> bool:
    """A folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    return (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()


def read_dataset_folder(
    folder: Path, shown: str, split: str = "train", max_records: int | None = None
) -> list[RawFile]:
    """The raw records of a dataset folder, one RawFile per file read."""
    if is_saved_dataset(folder):
        return [_read_saved(folder, shown, split, max_records)]
    shards = shard_files(folder, split)
    if not shards:
        raise DataError(
            f"{shown} is a folder with no dataset files in it",
            advice="point data.path at a file, a folder of .parquet / .jsonl / .json / .csv "
            "shards, or a folder written by datasets' save_to_disk",
        )
    raws: list[RawFile] = []
    remaining = max_records
    for shard in shards:
        raw = read_dataset_file(shard, split=split)
        raw.path = os.path.join(shown, str(shard.relative_to(folder)))
        raw.problems = [
            type(problem)(raw.path, problem.line, problem.reason, problem.field, problem.detail)
            for problem in raw.problems
        ]
        if remaining is not None:
            raw.records = raw.records[:remaining]
            remaining -= len(raw.records)
        raws.append(raw)
        if remaining is not None and remaining <= 0:
            break
    return raws


def shard_files(folder: Path, split: str) -> list[Path]:
    """Dataset files under `folder` in name order; only `split`'s when files name splits."""
    files = sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix.lower() in SUPPORTED_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    structured = [path for path in files if path.suffix.lower() in _STRUCTURED]
    files = structured or files  # text files only when there is nothing else (pretraining)
    named = {path: _split_of(path.relative_to(folder)) for path in files}
    found = {name for name in named.values() if name is not None}
    if not found:
        return files
    chosen = [path for path, name in named.items() if name == split]
    if not chosen:
        raise DataError(
            f"{folder} has no files for split '{split}'; it has {', '.join(sorted(found))}",
            advice="set data.split to one of those",
        )
    return chosen


def _split_of(relative: Path) -> str | None:
    words = re.split(r"[/\\_.-]+", str(relative.with_suffix("")).lower())
    return next((word for word in words if word in _SPLIT_NAMES), None)


def _read_saved(folder: Path, shown: str, split: str, max_records: int | None) -> RawFile:
    try:
        import datasets

        loaded: Any = datasets.load_from_disk(str(folder))
    except Exception as error:  # corrupt or foreign folder: many error types, all the user's
        raise DataError(f"cannot read the saved dataset: {error}", location=shown) from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(
                f"the saved dataset has no split '{split}'; it has {', '.join(loaded)}",
                location=shown,
                advice="set data.split to one of those",
            )
        loaded = loaded[split]
    if max_records is not None:
        loaded = loaded.select(range(min(max_records, len(loaded))))
    rows = loaded.to_list()
    return RawFile(shown, "arrow", [RawRecord(n, row) for n, row in enumerate(rows, start=1)])


def read_hub_dataset(
    name: str, split: str = "train", streaming: bool = False, max_records: int | None = None
) -> RawFile:
    """A hub dataset's split (or a local folder `datasets.load_dataset` understands); with
    `streaming`, only the first `max_records` records are fetched."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
    try:
        import datasets

        dataset = datasets.load_dataset(name, split=split, streaming=streaming)
        if streaming:
            rows = list(itertools.islice(dataset, max_records))
        else:
            if max_records is not None:
                dataset = dataset.select(range(min(max_records, len(dataset))))
            rows = dataset.to_list()
    except ImportError:
        raise DataError(
            "loading a hub dataset needs the 'datasets' package", advice="pip install datasets"
        ) from None
    except Exception as error:  # network, auth, missing split: user-fixable
        advice = (
            "HF_HUB_OFFLINE is set: only datasets already in the cache can be loaded"
            if offline
            else "check the name and split, your network and `hf auth login` for "
            "gated datasets; or give a local file path"
        )
        raise DataError(
            f"cannot load hub dataset '{name}' (split '{split}'): {error}", advice=advice
        ) from None
    if not rows:
        raise DataError(f"hub dataset '{name}' (split '{split}') holds no records")
    return RawFile(name, "hub", [RawRecord(n, row) for n, row in enumerate(rows, start=1)])
