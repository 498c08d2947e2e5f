"""Is the process that trains a run still there? Read from status.json, never from memory.

A run's status.json says `running` from the moment training starts; if the process dies
without a chance to write its end (kill -9, a crash of the machine, a lost container) it keeps
saying so. `effective_state` turns such a run into `interrupted`, so nobody waits on a run
that no process is training.

Checks, in order: the pid is alive on this host, and it is the same process that started the
run (its start time is not later than the run's). A run started on another host (a shared
runs folder) is alive while its heartbeat is fresh.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from studio.run_files import int_field, number_field, str_field

ACTIVE_STATES = frozenset({"preparing", "running", "paused", "stopping"})
TERMINAL_STATES = frozenset({"finished", "stopped", "failed"})
INTERRUPTED = "interrupted"
# How often a live session rewrites its heartbeat, and when another host calls it gone.
HEARTBEAT_SECONDS = 2.0
HEARTBEAT_STALE_SECONDS = 30.0


def this_host() -> str:
    return socket.gethostname()


def process_alive(pid: int, started: float | None = None) -> bool:
    """True when `pid` runs on this host and was not started after `started` (pid reuse)."""
    if pid <= 0:
        return False
    try:
        import psutil

        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        # A pid reused by a later process started after the run did.
        return started is None or process.create_time() <= started + 1.0
    except ImportError:
        pass
    except Exception:  # psutil.NoSuchProcess, AccessDenied: treat as gone / unknown
        return _kill_zero(pid)
    return _kill_zero(pid)


def _kill_zero(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def run_process_alive(status: dict[str, Any], now: float | None = None) -> bool:
    """Whether the process named in a status.json is still training it."""
    pid = int_field(status, "pid")
    if pid is None:
        return False
    host = status.get("host")
    if host and host != this_host():
        heartbeat = number_field(status, "heartbeat") or number_field(status, "updated") or 0.0
        return (now or time.time()) - heartbeat < HEARTBEAT_STALE_SECONDS
    started = number_field(status, "process_started") or number_field(status, "started")
    return process_alive(pid, started)


def effective_state(status: dict[str, Any]) -> str:
    """The state to show: the recorded one, or `interrupted` for an active run whose process
    is gone. An empty status (missing, torn or not an object: a run folder always gets one
    before its config.yaml) is `interrupted` too, so it can be resumed or deleted."""
    if not isinstance(status, dict) or not status:
        return INTERRUPTED
    state = str_field(status, "state") or "preparing"
    if state in ACTIVE_STATES and not run_process_alive(status):
        return INTERRUPTED
    return state
