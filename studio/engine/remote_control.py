"""Control a run that another process is training: stop, pause, resume, save now.

The channel is `control.jsonl` in the run directory. A client appends one JSON line per
command (appends of a short line are atomic, so two clients never tear each other's lines);
the training process reads new lines about twice a second (see `heartbeat.Heartbeat`), applies
them to its `TrainingControl` — so they take effect at the next step boundary, exactly like the
keys of the Train screen — and acknowledges the last one in status.json (`control_ack`).

`RemoteControl` has the same stop / pause / resume / request_save methods as
`TrainingControl`, so the Train screen drives an attached run with the same code.

Only the run's owner commands it. The training process creates control.jsonl 0600 before
anyone else can (see `RunDirectory.create_control_file`), a client never creates it with more,
and `ControlInbox` ignores the file while it is owned by another user or writable by group or
others (someone loosened it): a command in it could come from anyone.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from studio.engine.control import TrainingControl
from studio.errors import ConfigError
from studio.run_files import read_json_object

COMMANDS = ("stop", "pause", "resume", "save")
CONTROL_FILE = "control.jsonl"


def send_command(run_dir: str | Path, command: str) -> str:
    """Append a command for the process training `run_dir`; returns its id."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command '{command}'; known: {', '.join(COMMANDS)}")
    command_id = uuid.uuid4().hex[:12]
    line = json.dumps({"id": command_id, "command": command, "time": time.time()}) + "\n"
    path = Path(run_dir) / CONTROL_FILE
    _check_owner(Path(run_dir))
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except PermissionError:
        raise ConfigError(
            f"you may not control the run in {run_dir}: {path} is not writable for you",
            advice="only the user who started a run can stop, pause or save it",
        ) from None
    try:
        os.write(descriptor, line.encode("utf-8"))
    finally:
        os.close(descriptor)
    return command_id


def _check_owner(run_dir: Path) -> None:
    """Refuse up front to command a run another user owns (root may: it can anyway)."""
    try:
        owner = run_dir.stat().st_uid
    except OSError:
        return  # gone or unreadable: the open below says so
    if owner != os.geteuid() and os.geteuid() != 0:
        raise ConfigError(
            f"the run in {run_dir} belongs to another user (uid {owner})",
            advice="only the user who started a run can stop, pause or save it",
        )


def read_ack(run_dir: str | Path) -> dict[str, Any]:
    status = read_json_object(Path(run_dir) / "status.json").data
    ack = status.get("control_ack")
    return ack if isinstance(ack, dict) else {}


class RemoteControl:
    """`TrainingControl`'s commands, sent to a run in another process through its folder."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.last_command_id: str | None = None

    def _send(self, command: str) -> str:
        self.last_command_id = send_command(self.run_dir, command)
        return self.last_command_id

    def stop(self) -> str:
        return self._send("stop")

    def pause(self) -> str:
        return self._send("pause")

    def resume(self) -> str:
        return self._send("resume")

    def request_save(self) -> str:
        return self._send("save")

    def acknowledged(self, command_id: str | None = None) -> bool:
        """Whether the training process has applied `command_id` (default: the last sent)."""
        wanted = command_id or self.last_command_id
        return wanted is not None and wanted in read_ack(self.run_dir).get("ids", ())

    def wait_for_ack(self, command_id: str | None = None, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.acknowledged(command_id):
                return True
            time.sleep(0.1)
        return self.acknowledged(command_id)


class ControlInbox:
    """The training side: new commands since the last poll. Cheap: a stat per poll."""

    def __init__(self, path: Path, *, skip_existing: bool = True) -> None:
        self.path = path
        self.offset = self._size() if skip_existing else 0
        self._partial = b""
        # Why commands are being ignored (the file is not the owner's alone), or None.
        self.refused: str | None = None

    def _trusted(self, info: os.stat_result) -> bool:
        if info.st_uid != os.geteuid():
            self.refused = f"{self.path} is owned by uid {info.st_uid}, not by this run's user"
        elif info.st_mode & 0o022:
            self.refused = f"{self.path} is writable by other users (mode {info.st_mode & 0o777:o})"
        else:
            self.refused = None
        return self.refused is None

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def poll(self) -> list[dict[str, Any]]:
        size = self._size()
        if size < self.offset:  # replaced or truncated by someone: start over
            self.offset, self._partial = 0, b""
        if size == self.offset:
            return []
        with self.path.open("rb") as stream:
            trusted = self._trusted(os.fstat(stream.fileno()))
            stream.seek(self.offset)
            data = stream.read(size - self.offset)
        self.offset += len(data)
        if not trusted:
            self._partial = b""
            return []  # read past, so they are never applied later either
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        commands = []
        for line in lines:
            try:
                command = json.loads(line)
            except ValueError:
                continue
            if isinstance(command, dict) and command.get("command") in COMMANDS:
                commands.append(command)
        return commands


def apply_command(control: TrainingControl, command: str) -> None:
    if command == "stop":
        control.stop()
    elif command == "pause":
        control.pause()
    elif command == "resume":
        control.resume()
    elif command == "save":
        control.request_save()
