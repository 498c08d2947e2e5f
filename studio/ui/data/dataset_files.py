"""Dataset files the Config screen offers to pick from, found under the working folder."""

from __future__ import annotations

import os
from pathlib import Path

DATASET_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".txt")
CONFIG_SUFFIXES = (".yaml", ".yml")
SKIP_FOLDERS = {
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "runs",
    "__pycache__",
    ".cache",
    "build",
    "dist",
}
SKIP_NAMES = {"requirements.txt", "LICENSE.txt", "CMakeLists.txt"}
# ftstudio's own folders, when it runs from its checkout: code, tests, docs and benchmark
# records are not datasets or run configs.
PROJECT_FOLDERS = ("studio", "tests", "docs", "bench")
MAX_DEPTH = 3
MAX_FILES = 200


def find_files(root: Path, suffixes: tuple[str, ...], limit: int = MAX_FILES) -> list[str]:
    """Paths relative to `root` of files with these suffixes, shallow ones first."""
    found: list[tuple[int, str]] = []
    root = root.resolve()
    for folder, folders, files in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        folders[:] = sorted(
            name
            for name in folders
            if name not in SKIP_FOLDERS
            and not name.startswith(".")
            and not name.endswith(".egg-info")  # pip install -e writes one beside the code
        )
        if depth >= MAX_DEPTH:
            folders[:] = []
        for name in files:
            if name.endswith(suffixes) and name not in SKIP_NAMES and not name.startswith("."):
                relative = (Path(folder) / name).relative_to(root)
                found.append((depth, str(relative)))
        if len(found) >= limit * 2:
            break
    found.sort(key=lambda item: (item[0], item[1]))
    return [path for _, path in found[:limit]]


def find_datasets(root: Path) -> list[str]:
    return [
        path
        for path in find_files(root, DATASET_SUFFIXES)
        if Path(path).parts[0] not in PROJECT_FOLDERS
    ]


def find_configs(root: Path) -> list[str]:
    return [
        path
        for path in find_files(root, CONFIG_SUFFIXES)
        if Path(path).parts[0] not in (*PROJECT_FOLDERS, "themes", ".github")
    ]
