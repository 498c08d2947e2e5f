"""The run directory: everything about one run, written as it happens.

config.yaml       the validated config the run used
status.json       state, pid, host, heartbeat, start / end times, step, final numbers, error
metrics.jsonl     one line per logged train step or eval
telemetry.jsonl   one line per telemetry snapshot
log.txt           human-readable log, tracebacks of internal errors included
data_report.json  what the dataset check read, kept and dropped
control.jsonl     commands from other processes (stop, pause, resume, save), appended
checkpoints/      periodic checkpoints; `checkpoint-N/ftstudio_complete.json` marks a whole one
adapter/          the trained result (PEFT format for PEFT methods)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from studio.config import RunConfig, dump_config


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def replace_directory(staging: Path, target: Path) -> None:
    """Put a fully written `staging` folder in place of `target`.

    The old one is renamed aside first and removed last, so at every moment there is a whole
    folder either at `target` or at `target`'s `.old` name (see `restore_replaced`)."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def restore_replaced(target: Path) -> bool:
    """After a crash inside `replace_directory`: put the old folder back if none is in place."""
    old = target.with_name(f".{target.name}.old")
    if old.is_dir() and not target.exists():
        old.rename(target)
        return True
    return False


def default_run_name(config: RunConfig, now: datetime | None = None) -> str:
    model = Path(config.model.source.rstrip("/")).name or "model"
    model = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-.") or "model"
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    return f"{model}-{config.method.name}-{config.training_type}-{stamp}"


class RunDirectory:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def create(cls, config: RunConfig) -> RunDirectory:
        runs = Path(config.output.runs_dir).expanduser()
        name = config.output.run_name or default_run_name(config)
        path = runs / name
        suffix = 1
        while path.exists():
            suffix += 1
            path = runs / f"{name}-{suffix}"
        path.mkdir(parents=True)
        run = cls(path)
        write_atomic(run.config_path, dump_config(config))
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDirectory:
        """An existing run directory (one with a config.yaml)."""
        from studio.errors import ConfigError

        path = Path(path).expanduser()
        if not (path / "config.yaml").is_file():
            raise ConfigError(
                f"not a run directory: {path}",
                advice="point at a folder inside the runs folder that holds a config.yaml",
            )
        return cls(path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def telemetry_path(self) -> Path:
        return self.path / "telemetry.jsonl"

    @property
    def log_path(self) -> Path:
        return self.path / "log.txt"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def control_path(self) -> Path:
        return self.path / "control.jsonl"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def adapter_dir(self) -> Path:
        return self.path / "adapter"

    def append_jsonl(self, path: Path, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False)
        with self._lock, path.open("a", encoding="utf-8") as stream:
            stream.write(line + "\n")

    def log(self, text: str, level: str = "info") -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        with self._lock, self.log_path.open("a", encoding="utf-8") as stream:
            for line in text.splitlines() or [""]:
                stream.write(f"{stamp} {level:<7} {line}\n")

    def write_status(self, **fields: Any) -> None:
        # The trainer thread and the heartbeat thread both update it: read-modify-write locked.
        with self._lock:
            status = self.read_status()
            status.update(fields)
            status["updated"] = time.time()
            write_atomic(self.status_path, json.dumps(status, indent=2))

    def read_status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def write_json(self, name: str, data: Any) -> None:
        write_atomic(self.path / name, json.dumps(data, indent=2, ensure_ascii=False))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every record of a metrics.jsonl file; a torn last line (a crash mid-write) is skipped."""
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records
