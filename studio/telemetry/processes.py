"""Who owns a GPU process: user name and command line via psutil, cached per pid.

On a shared server this is what tells a user whose job holds the memory. Inside a container
NVML reports host pids that psutil cannot see; those stay None.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import psutil

_Result = TypeVar("_Result")

MAX_COMMAND_CHARS = 240  # keep telemetry.jsonl lines short; the start of a command says enough


class ProcessDescriber:
    """Resolves pids to (user, command); forgets pids that are no longer listed."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[str | None, str | None]] = {}

    def describe(self, pids: list[int]) -> dict[int, tuple[str | None, str | None]]:
        wanted = set(pids)
        # Drop pids that left the GPU so a reused pid is looked up afresh.
        for pid in list(self._cache):
            if pid not in wanted:
                del self._cache[pid]
        for pid in wanted - self._cache.keys():
            self._cache[pid] = _look_up(pid)
        return {pid: self._cache[pid] for pid in wanted}


def _look_up(pid: int) -> tuple[str | None, str | None]:
    try:
        process = psutil.Process(pid)
    except (psutil.Error, OSError, ValueError):
        return None, None
    return _guarded(process.username), _command_of(process)


def _command_of(process: psutil.Process) -> str | None:
    arguments = _guarded(process.cmdline)
    # Kernel threads and zombies have no command line: fall back to the process name.
    command = " ".join(arguments) if arguments else _guarded(process.name)
    if command and len(command) > MAX_COMMAND_CHARS:
        command = command[: MAX_COMMAND_CHARS - 1] + "…"
    return command or None


def _guarded(call: Callable[[], _Result]) -> _Result | None:
    try:
        return call()
    except (psutil.Error, OSError):
        return None
