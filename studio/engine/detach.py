"""Keep a run going when its terminal goes away.

Over SSH, a closed laptop lid or a dropped network hangs up the terminal: the kernel (or the
shell) sends SIGHUP, whose default action ends the process — and the run with it. Instead:

- `on_hangup(callback)` installs a SIGHUP handler (the headless `ftstudio train` uses it; the
  TUI may too) that runs `callback` once, on the main thread;
- `detach_from_terminal(log_path)` makes the process independent of the terminal: SIGHUP is
  ignored from then on, stdin reads /dev/null, and stdout / stderr (stray prints, warnings, a
  last traceback) are appended to the run's log instead of a terminal that no longer exists;
- `continue_headless(thread, log_path)` does that and waits for the trainer thread, for an app
  that quits while a run is active and the user chose to keep it running. The process exits
  when the run ends; metrics, telemetry and checkpoints keep going to the run directory all
  along, and `ftstudio runs follow RUN` (or the Train screen) attaches to it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def ignore_hangups() -> None:
    """Ignore SIGHUP from now on (only the main thread may set signal handlers)."""
    if _on_main_thread() and hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)


def on_hangup(callback: Callable[[], None]) -> Any:
    """Run `callback` (once) when the terminal hangs up; returns the previous handler.

    Call from the main thread. `callback` runs inside the signal handler, between two
    bytecodes of whatever the main thread was doing: it must not take a lock that code might
    hold (log from a new thread instead, as `studio.commands.train_console` does)."""

    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        callback()

    return signal.signal(signal.SIGHUP, handler)


def detach_from_terminal(log_path: str | Path | None) -> None:
    """Stop using the terminal: ignore SIGHUP, stdin from /dev/null, stdout and stderr
    appended to `log_path` (or discarded when there is none yet)."""
    ignore_hangups()
    for stream in (sys.stdout, sys.stderr):
        # The terminal may be gone (EIO), or a signal handler interrupted a write
        # (RuntimeError: reentrant call); what stays buffered goes to the log below.
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            stream.flush()
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        target = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    else:
        target = os.open(os.devnull, os.O_WRONLY)
    empty = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(empty, 0)
        os.dup2(target, 1)
        os.dup2(target, 2)
    finally:
        os.close(empty)
        os.close(target)


def continue_headless(
    trainer: threading.Thread | Callable[[], object], log_path: str | Path | None
) -> None:
    """Detach from the terminal and block until the run ends: `trainer` is the trainer
    thread (joined), or a function that returns when it has ended (the TUI waits for its
    event loop's executor, where thread workers run)."""
    detach_from_terminal(log_path)
    if isinstance(trainer, threading.Thread):
        trainer.join()
    else:
        trainer()
