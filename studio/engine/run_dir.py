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

A run folder is private to its owner: the folder is 0700 and every file in it 0600, whatever
the umask, so the data, the weights and the control channel are nobody else's. With
`output.share_with_group: true` the folder is 0750 and the files 0640: the group reads, only
the owner writes; control.jsonl stays 0600 either way (only the owner commands a run).
Files are read back through `run_files`, which never trusts what they hold.
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
from studio.run_files import JsonObject, read_json_object, read_jsonl_objects

PRIVATE_DIR_MODE, PRIVATE_FILE_MODE = 0o700, 0o600
SHARED_DIR_MODE, SHARED_FILE_MODE = 0o750, 0o640
CONTROL_FILE_MODE = 0o600


def write_atomic(
    path: Path, text: str, mode: int | None = None, *, make_parents: bool = True
) -> None:
    """Write via a temporary file and a rename, so readers never see half a file.

    The new file gets `mode`, else the mode of the file it replaces, else 0600. A run's own
    files pass `make_parents=False`: a run folder removed while it trains is not made again."""
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            mode = PRIVATE_FILE_MODE
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(handle, mode)
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


def apply_modes(path: Path, dir_mode: int, file_mode: int) -> None:
    """Set the run's folder and file modes on a tree the Trainer or a library wrote (they
    follow the umask)."""
    for root, folders, files in os.walk(path):
        for name in folders:
            _chmod(Path(root) / name, dir_mode)
        for name in files:
            _chmod(Path(root) / name, file_mode)
    _chmod(path, dir_mode if path.is_dir() else file_mode)


def _chmod(path: Path, mode: int) -> None:
    try:
        if not path.is_symlink():
            path.chmod(mode)
    except OSError:
        pass  # not ours (a link target) or gone meanwhile: nothing to tighten


class RunDirectory:
    def __init__(self, path: Path, *, shared: bool | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        if shared is None:  # an existing run keeps the sharing it was created with
            try:
                shared = bool(path.stat().st_mode & 0o050)
            except OSError:
                shared = False
        self.dir_mode = SHARED_DIR_MODE if shared else PRIVATE_DIR_MODE
        self.file_mode = SHARED_FILE_MODE if shared else PRIVATE_FILE_MODE
        # What this process last wrote to status.json: should the file be damaged under a
        # live run, the next write (a heartbeat, within seconds) puts its state and pid back,
        # so nobody takes the run for an interrupted one and resumes it twice.
        self._last_status: dict[str, Any] = {}

    @classmethod
    def create(cls, config: RunConfig, *, status: dict[str, Any] | None = None) -> RunDirectory:
        """A new run folder named after the config, with `-2`, `-3` ... when the name is taken
        (also by another process starting the same run in the same second).

        status.json is written before config.yaml, so a folder that looks like a run always
        has one. Should that fail (a full disk), the new folder is removed again."""
        runs = Path(config.output.runs_dir).expanduser()
        name = config.output.run_name or default_run_name(config)
        runs.mkdir(parents=True, exist_ok=True)
        shared = bool(getattr(config.output, "share_with_group", False))
        suffix = 1
        while True:
            path = runs / (name if suffix == 1 else f"{name}-{suffix}")
            try:
                path.mkdir()  # atomic: of two processes taking one name, one gets it
                break
            except FileExistsError:
                suffix += 1
        run = cls(path, shared=shared)
        try:
            path.chmod(run.dir_mode)
            run.create_control_file()
            run.write_status(run_name=path.name, **(status or {}))
            write_atomic(run.config_path, dump_config(config), run.file_mode)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
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

    def _append(self, path: Path, text: str) -> None:
        data = text.encode("utf-8", errors="surrogateescape")
        with self._lock:
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self.file_mode)
            try:
                if os.fstat(descriptor).st_mode & 0o777 != self.file_mode:
                    os.fchmod(descriptor, self.file_mode)  # the umask took more than we asked
                os.write(descriptor, data)
            finally:
                os.close(descriptor)

    def append_jsonl(self, path: Path, record: dict[str, Any]) -> None:
        self._append(path, json.dumps(record, ensure_ascii=False) + "\n")

    def log(self, text: str, level: str = "info") -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        lines = text.splitlines() or [""]
        self._append(self.log_path, "".join(f"{stamp} {level:<7} {line}\n" for line in lines))

    def create_control_file(self) -> None:
        """control.jsonl, made by the owner before anyone else can: 0600, so only the owner
        can append commands (see remote_control.ControlInbox, which checks it)."""
        descriptor = os.open(self.control_path, os.O_WRONLY | os.O_CREAT, CONTROL_FILE_MODE)
        try:
            os.fchmod(descriptor, CONTROL_FILE_MODE)
        finally:
            os.close(descriptor)

    def write_status(self, **fields: Any) -> None:
        # The trainer thread and the heartbeat thread both update it: read-modify-write locked.
        with self._lock:
            read = self.status_file()
            status = dict(self._last_status) if read.problem else read.data
            status.update(fields)
            status["updated"] = time.time()
            self._last_status = status
            text = json.dumps(status, indent=2)
            write_atomic(self.status_path, text, self.file_mode, make_parents=False)

    def read_status(self) -> dict[str, Any]:
        """status.json's object; {} when it is missing or damaged (see `status_file`)."""
        return self.status_file().data

    def status_file(self) -> JsonObject:
        """status.json read without trusting it: the object, or what is wrong with it."""
        return read_json_object(self.status_path)

    def write_json(self, name: str, data: Any) -> None:
        text = json.dumps(data, indent=2, ensure_ascii=False)
        write_atomic(self.path / name, text, self.file_mode, make_parents=False)

    def apply_modes(self, tree: Path) -> None:
        """Give a tree written by the Trainer or a library the run's modes, and the folders
        between it and the run folder (checkpoints/, which the Trainer makes) too."""
        apply_modes(tree, self.dir_mode, self.file_mode)
        for parent in tree.parents:
            if parent == self.path or self.path not in parent.parents:
                break
            _chmod(parent, self.dir_mode)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every record of a metrics.jsonl file; torn, non-UTF-8 and non-object lines are
    skipped (a crash mid-write, a hand edit)."""
    return read_jsonl_objects(path)


def train_losses(path: Path) -> tuple[float | None, float | None]:
    """(best, last) training loss in a metrics.jsonl file; None where none was logged."""
    kept = [m for m in read_metrics(path) if m.get("type") == "train"]
    losses = [m["loss"] for m in kept if isinstance(m.get("loss"), (int, float))]
    return (min(losses), losses[-1]) if losses else (None, None)
