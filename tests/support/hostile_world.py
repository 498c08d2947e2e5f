"""Helpers of the fault-injection tests (test_hostile_*.py): one tiny trained run shared by
them all, copies of it to damage, the CLI run in-process, and an injected full disk."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Any

import pytest

from studio.config import load_config
from tests.conftest import REPO, SAMPLE_DATA

QUICKSTART = SAMPLE_DATA / "configs" / "quickstart.yaml"
# Small enough to train in seconds on a loaded CPU; two checkpoints and an adapter.
TINY_SETTINGS = (
    "method.rank=4",
    "method.alpha=8",
    "data.max_length=64",
    "training.batch_size=2",
    "training.max_steps=4",
    "training.save_steps=2",
    "training.logging_steps=1",
    f"data.path={SAMPLE_DATA / 'alpaca_en.jsonl'}",
)
ESCAPES = "\x1b]52;c;aGk=\x07\x1b[2J"


def tiny_config(runs: Path, name: str | None, *extra: str) -> Any:
    naming = [f"output.run_name={name}"] if name else []
    return load_config(QUICKSTART, [f"output.runs_dir={runs}", *naming, *TINY_SETTINGS, *extra])


def tiny_overrides(runs: Path, name: str, *extra: str) -> list[str]:
    """The same settings as `--set` arguments of `ftstudio train`."""
    settings = [f"output.runs_dir={runs}", f"output.run_name={name}", *TINY_SETTINGS, *extra]
    return [part for setting in settings for part in ("--set", setting)]


def train_reference(runs: Path) -> Path:
    from studio.engine import RunState
    from studio.engine.session import TrainingSession

    result = TrainingSession(
        tiny_config(runs, "ref"), base_dir=REPO, telemetry_interval=None
    ).run()
    assert result.state is RunState.FINISHED, result
    return Path(result.run_dir)


def copy_run(reference: Path, runs: Path, name: str) -> Path:
    """A copy of the reference run to damage, in `runs` (made if needed)."""
    runs.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(reference, runs / name, symlinks=True))


def assert_no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback (most recent call last)" not in text, text


class FullDisk:
    """An injected full disk: once `fill()` is called (or from the start), every write of a
    run's own files fails with ENOSPC, as on a real full filesystem."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, full: bool = False) -> None:
        from studio.engine import run_dir

        self.full = full
        original_atomic = run_dir.write_atomic
        original_append = run_dir.RunDirectory._append

        def write_atomic(*args: Any, **kwargs: Any) -> None:
            self.check()
            original_atomic(*args, **kwargs)

        def append(run: Any, path: Path, text: str) -> None:
            self.check()
            original_append(run, path, text)

        monkeypatch.setattr(run_dir, "write_atomic", write_atomic)
        monkeypatch.setattr(run_dir.RunDirectory, "_append", append)

    def check(self) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")

    def fill(self) -> OSError:
        self.full = True
        return OSError(errno.ENOSPC, "No space left on device")
