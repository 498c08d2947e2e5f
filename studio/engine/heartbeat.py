"""The session's keep-alive thread: a heartbeat in status.json, and commands from control.jsonl.

It runs beside the trainer for the whole session — also while the model loads and while the
run is paused (the trainer thread then blocks, so it could not read commands itself). Each
poll is one stat of control.jsonl; the heartbeat is one small status.json rewrite every
`HEARTBEAT_SECONDS`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from studio.engine.control import TrainingControl
from studio.engine.liveness import HEARTBEAT_SECONDS
from studio.engine.remote_control import ControlInbox, apply_command
from studio.engine.run_dir import RunDirectory

ACK_HISTORY = 20


class Heartbeat:
    def __init__(
        self,
        run: RunDirectory,
        control: TrainingControl,
        *,
        poll_seconds: float = 0.5,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        on_command: Callable[[str], None] | None = None,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.run = run
        self.control = control
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.on_command = on_command
        self.on_refused = on_refused
        self._refused: str | None = None
        self.inbox = ControlInbox(run.control_path, skip_existing=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ftstudio-heartbeat", daemon=True)
        self._acked: list[str] = []

    def start(self) -> None:
        self.run.write_status(heartbeat=time.time())
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.poll()  # a command sent just before the end is still acknowledged

    def _loop(self) -> None:
        last_beat = time.monotonic()
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
                if time.monotonic() - last_beat >= self.heartbeat_seconds:
                    self.run.write_status(heartbeat=time.time())
                    last_beat = time.monotonic()
            except OSError as error:
                # A full disk must not kill the run; a removed run folder ends it (at the
                # next step, unsaved: saving would only make the folder again, half).
                if not self.run.config_path.exists() and self.control.failure is None:
                    self.control.fail(error)
                continue

    def poll(self) -> None:
        commands = self.inbox.poll()
        if self.inbox.refused != self._refused:
            self._refused = self.inbox.refused
            if self._refused and self.on_refused is not None:
                self.on_refused(self._refused)
        for command in commands:
            name = str(command["command"])
            apply_command(self.control, name)
            if self.on_command is not None:
                self.on_command(name)
            self._acked = [*self._acked, str(command.get("id", ""))][-ACK_HISTORY:]
        if commands:
            last = str(commands[-1]["command"])
            self.run.write_status(
                control_ack={"ids": self._acked, "last": last, "time": time.time()}
            )
