"""Trained runs shared by the whole test session, trained once per session across the
pytest-xdist workers.

Each worker has its own session fixtures, so a run folder is trained under a file lock in the
folder all workers share (the parent of each worker's base temp), and the workers that come
later read the finished one. Tests must not change a shared run: copy it first."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest


def shared_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every worker of this test session sees (its own base temp without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def trained_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, train: Callable[[Path], Path]
) -> Path:
    """The run that `train(runs_dir)` writes and returns, trained by the first worker that
    asks for `name`; `train` raises (fails the test) if the run does not finish."""
    from filelock import FileLock

    home = shared_folder(tmp_path_factory) / "trained-runs" / name
    home.mkdir(parents=True, exist_ok=True)
    done = home / "run-path.txt"
    with FileLock(str(home / "lock")):
        if not done.exists():
            run = train(home / "runs")
            done.write_text(str(run), encoding="utf-8")
    return Path(done.read_text(encoding="utf-8"))
