"""The studio over a real SSH connection: OpenSSH's server on loopback with a throw-away host
key and user key, `ftstudio` in the session's pty, a run started from the keyboard, the
connection dropped mid-run (its TCP connection reset, as when a laptop's network goes), a new
login that attaches to the run, resumes it, sees it go on with its whole history and stops it
(the adapter is saved), whatever the speed of the machine.

Between the client and the server sits a small TCP relay: it counts the bytes the server sends
(what the studio costs on the wire while training) and cuts the connection when told to.
Skipped, saying why, where the OpenSSH server or client is not installed (`.ci/run` installs
them).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import shutil
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from tests.ui.test_tui_hangup import Terminal, exit_status, read_log, run_state
from tests.ui.test_ui_attach import TIMEOUT, train_steps

SSHD = Path("/usr/sbin/sshd")
SSH = shutil.which("ssh")
KEYGEN = shutil.which("ssh-keygen")
REPO = Path(__file__).resolve().parents[2]
STEPS = 2000  # never reached: the attached studio stops the run, however fast it trains
ROWS, COLUMNS = 24, 80
MEASURE_SECONDS = 6.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (SSHD.is_file() and SSH and KEYGEN),
        reason="needs the OpenSSH server and client: apt-get install -y openssh-server "
        "openssh-client",
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Relay:
    """A TCP relay from a local port to the SSH server: counts the bytes the server sends, and
    resets every connection on `drop()` (no FIN, no goodbye: a network that went away)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.from_server = 0
        self.connections: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self.connections += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
            except OSError:
                break
            if counted:
                with self._lock:
                    self.from_server += len(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        with self._lock:
            connections, self.connections = self.connections, []
        for connection in connections:
            # Linger 0: close with a reset, as a connection that died does; the shutdown
            # wakes the relay's threads blocked reading it.
            try:
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()

    def close(self) -> None:
        self.drop()
        self.listener.close()


def keygen(path: Path) -> None:
    subprocess.run(
        [KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=60
    )


def start_sshd(folder: Path) -> tuple[subprocess.Popen, int, Path]:
    """sshd on a loopback port that lets in only the throw-away user key."""
    folder.mkdir(parents=True, exist_ok=True)
    keygen(folder / "host_key")
    keygen(folder / "user_key")
    authorized = folder / "authorized_keys"
    authorized.write_text((folder / "user_key.pub").read_text(encoding="utf-8"))
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {folder / 'host_key'}\n"
        f"AuthorizedKeysFile {authorized}\n"
        f"PidFile {folder / 'sshd.pid'}\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\n"
        "UsePAM no\n"
        "StrictModes no\n"
        # Notice a dead client within seconds, as a server does with keep-alives.
        "ClientAliveInterval 2\n"
        "ClientAliveCountMax 2\n",
        encoding="utf-8",
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation dir
    log = (folder / "sshd.log").open("wb")
    server = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None, (folder / "sshd.log").read_text()
            assert time.monotonic() < deadline, "sshd did not start listening"
            time.sleep(0.1)
    return server, port, folder / "user_key"


def login(port: int, key: Path, tmp_path: Path, config: Path) -> tuple[int, Terminal]:
    """`ssh -tt` into the server (through the relay's port) running `ftstudio --config`."""
    remote_env = {
        "PYTHONPATH": str(REPO),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "TEXTUAL_ANIMATIONS": "none",
    }
    remote = " ".join(
        [
            f"cd {REPO} &&",
            "env",
            *(f"{name}={value}" for name, value in remote_env.items()),
            sys.executable,
            "-m",
            "studio",
            "--config",
            str(config),
        ]
    )
    command = [
        SSH or "ssh",
        "-tt",
        "-p",
        str(port),
        "-i",
        str(key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        f"{os.environ.get('USER') or 'root'}@127.0.0.1",
        remote,
    ]
    env = {**os.environ, "TERM": "xterm-256color"}
    pid, master = pty.fork()
    if pid == 0:
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
            os.execve(command[0], command, env)
        finally:
            os._exit(127)
    return pid, Terminal(master)


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "run.yaml"
    data = REPO / "sample_data" / "alpaca_en.jsonl"
    config.write_text(
        "model: {source: tiny-demo}\n"
        "method: {name: lora, rank: 8, alpha: 16}\n"
        f"data: {{path: {data}, max_length: 128}}\n"
        f"training: {{max_steps: {STEPS}, logging_steps: 1, batch_size: 4, save_steps: 1000,"
        " sample_steps: 0}\n"
        f"output: {{runs_dir: {tmp_path / 'runs'}, run_name: over-ssh}}\n",
        encoding="utf-8",
    )
    return config


def wait(check, what: str, terminal: Terminal, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what}; the screen:\n{terminal.text()[-1500:]}"
        time.sleep(0.1)


def studio_pid(run: Path) -> int | None:
    try:
        return json.loads((run / "status.json").read_text(encoding="utf-8")).get("pid")
    except (OSError, ValueError):
        return None


def test_a_run_over_ssh_survives_a_dropped_connection_and_is_attached_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, sshd_port, key = start_sshd(tmp_path / "ssh")
    relay = Relay(sshd_port)
    run = tmp_path / "runs" / "over-ssh"
    config = write_config(tmp_path)
    clients: list[int] = []
    training_pid: int | None = None
    try:
        pid, terminal = login(relay.port, key, tmp_path, config)
        clients.append(pid)
        terminal.wait_for("Quit")  # the studio's first screen, over SSH
        terminal.press("3")
        terminal.wait_for("No run yet")
        terminal.press("s")
        wait(lambda: len(train_steps(run)) >= 2, "training steps", terminal)
        training_pid = studio_pid(run)

        # What the studio sends over the wire while it trains, on the Train screen.
        before, started = relay.from_server, time.monotonic()
        time.sleep(MEASURE_SECONDS)
        rate = (relay.from_server - before) / (time.monotonic() - started)
        with capsys.disabled():
            print(f"\nSSH: {rate:,.0f} bytes/s from the server while training (80x24, Train)")
        assert rate < 20_000, f"{rate:.0f} bytes/s over SSH while training"

        # Hold the run, so the attach below sees it going however fast this machine trains.
        terminal.press("p")
        wait(lambda: run_state(run) == "paused", "the pause", terminal)

        relay.drop()  # the network goes away mid-run
        wait(
            lambda: "terminal hung up: training goes on headless" in read_log(run),
            "the hang-up note in the run's log",
            terminal,
        )
        if exit_status(pid, 30) is None:  # a client on a dead network may hang: the user's
            os.kill(pid, 9)  # laptop lid closes on it
            os.waitpid(pid, 0)
        clients.remove(pid)
        assert training_pid and os.path.exists(f"/proc/{training_pid}")  # the run goes on
        steps_before = len(train_steps(run))

        # Log in again: the studio offers the run; ctrl+r attaches, p resumes it.
        pid, terminal = login(relay.port, key, tmp_path, config)
        clients.append(pid)
        terminal.wait_for("ctrl+r attaches")
        terminal.press("\x12")
        terminal.wait_for("attached to over-ssh")
        terminal.press("p")  # resume it from the attached studio
        wait(lambda: len(train_steps(run)) >= steps_before + 2, "steps after the resume", terminal)
        terminal.press("x")  # stop it (the adapter is saved)
        wait(lambda: run_state(run) == "stopped", "the stop", terminal, 2 * TIMEOUT)
        terminal.wait_for("stopped")  # the attached Train screen saw the end
        terminal.press("\x11")  # ctrl+q: the run has ended, so the studio just quits
        assert exit_status(pid, 60) == 0, terminal.text()[-3000:]
        clients.remove(pid)
    finally:
        for pid in clients:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        relay.close()
        server.terminate()
        server.wait(timeout=30)
        if training_pid and run_state(run) not in ("finished", "stopped"):
            with contextlib.suppress(OSError):
                os.kill(training_pid, 9)
    assert steps_before >= 2
    steps = [step for step, _ in train_steps(run)]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= steps_before + 2  # all of it
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
