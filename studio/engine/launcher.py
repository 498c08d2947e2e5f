"""Train on several devices or nodes through torch's own launcher, torchrun.

`GroupSession` is the several-process counterpart of `TrainingSession` (same `run()`,
`run_dir`, `log`, `control`): it prepares the run folder, starts the group and follows the
folder, publishing the events rank 0 records, exactly as a detached run is followed. Its
control (Ctrl-C, the Train screen's keys) goes to the group through control.jsonl.

The group itself runs as `python -m studio.engine.launcher <torchrun arguments>`: that is
`torch.distributed.run` with one addition, it writes which rank failed and why into
status.json when the group fails (torchrun only prints it).

`torchrun_arguments` / `torchrun_command` / `slurm_script` give the commands for one node of
a multi-node run; tests check them with torch.distributed.run's own argument parser.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.engine.control import TrainingControl
from studio.engine.distributed import read_rank_results
from studio.engine.events import EventBus, LogLine, RunError, RunEvent, RunFinished, RunState
from studio.engine.liveness import this_host
from studio.engine.run_dir import RunDirectory
from studio.errors import ConfigError

if TYPE_CHECKING:
    from studio.config import RunConfig
    from studio.telemetry.snapshots import TelemetrySnapshot

DEFAULT_PORT = 29500
RANK_MODULE = "studio.engine.rank"
# Signals torchrun itself sends to the ranks left when one fails: never the cause.
TORCHRUN_SIGNALS = frozenset({15, 2})  # SIGTERM, SIGINT


@dataclass(frozen=True)
class NodeSpec:
    """One node of a group: how many nodes, which one this is, and where they meet."""

    processes: int  # processes (devices) on this node
    nodes: int = 1
    node_rank: int = 0
    rendezvous: str | None = None  # "host:port" of the rendezvous; None: this machine alone
    run_id: str = "ftstudio"

    def __post_init__(self) -> None:
        if self.nodes < 1 or not 0 <= self.node_rank < self.nodes:
            raise ConfigError(
                f"node rank {self.node_rank} is not one of the {self.nodes} nodes",
                advice="number the nodes 0 .. nodes-1; node 0 is the one that saves",
            )
        if self.nodes > 1 and not self.rendezvous:
            raise ConfigError(
                "a run on several nodes needs a rendezvous address",
                advice="pass --rendezvous HOST:PORT, the address of node 0 (e.g. node0:29500)",
            )


def torchrun_arguments(
    spec: NodeSpec,
    run_dir: str | Path,
    *,
    resume: bool = False,
    config_path: str | Path | None = None,
    base_dir: str | Path | None = None,
) -> list[str]:
    """torchrun's arguments (after `torchrun`) for one node of the group training `run_dir`."""
    arguments = [f"--nnodes={spec.nodes}", f"--nproc-per-node={spec.processes}"]
    if spec.nodes == 1 and not spec.rendezvous:
        # One machine: torchrun picks a free port itself, so two runs never collide.
        arguments += ["--standalone"]
    else:
        arguments += [
            f"--node-rank={spec.node_rank}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={spec.rendezvous}",
            f"--rdzv-id={spec.run_id}",
        ]
    arguments += ["--max-restarts=0", "--module", RANK_MODULE, "--run-dir", str(run_dir)]
    if config_path is not None:
        arguments += ["--config", str(config_path)]
    if base_dir is not None:
        arguments += ["--base-dir", str(base_dir)]
    if resume:
        arguments.append("--resume")
    return arguments


def torchrun_command(spec: NodeSpec, run_dir: str | Path, **options: Any) -> str:
    """The shell command that starts this node's part of the group."""
    return shlex.join(["torchrun", *torchrun_arguments(spec, run_dir, **options)])


def slurm_script(
    config_path: str | Path,
    run_dir: str | Path,
    *,
    nodes: int,
    gpus_per_node: int,
    job_name: str = "ftstudio",
    port: int = DEFAULT_PORT,
    time_limit: str | None = None,
    partition: str | None = None,
    base_dir: str | Path | None = None,
) -> str:
    """An sbatch script: one torchrun per node (srun), meeting at the job's first node.

    The run folder must be on a filesystem every node sees; global rank 0 creates it from
    `config_path` and writes it, the other ranks write only their logs under `ranks/`.
    """
    spec = NodeSpec(gpus_per_node, nodes, 0, f"$head_node:{port}", "$SLURM_JOB_ID")
    arguments = torchrun_arguments(spec, run_dir, config_path=config_path, base_dir=base_dir)
    # --node-rank comes from Slurm at run time; the rest is the same on every node.
    arguments = [a for a in arguments if not a.startswith("--node-rank=")]
    arguments.insert(2, "--node-rank=$SLURM_NODEID")
    quoted = " ".join(_shell_word(argument) for argument in arguments)
    header = [
        "#!/bin/bash",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --gpus-per-node={gpus_per_node}",
        f"#SBATCH --output={job_name}-%j.out",
    ]
    if time_limit:
        header.append(f"#SBATCH --time={time_limit}")
    if partition:
        header.append(f"#SBATCH --partition={partition}")
    body = [
        "set -euo pipefail",
        "# torchrun on every node; they meet at the first node of the allocation.",
        'export head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        "export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}",
        f"srun --kill-on-bad-exit=1 bash -c 'torchrun {quoted}'",
    ]
    return "\n".join([*header, "", *body]) + "\n"


def _shell_word(word: str) -> str:
    # Variables stay for the shell (inside the single-quoted bash -c); the rest is quoted.
    if "$" in word:
        return '"' + word + '"'
    return shlex.quote(word).replace("'", "'\"'\"'")


# ------------------------------------------------------------ the group process


# Errors a rank gets because another rank went away: a consequence, not the cause.
PEER_LOST = (
    "connection reset by peer",
    "connection closed by peer",
    "broken pipe",
    "socket timeout",
    "remote worker",
    "collective operation timeout",
    "communicator was aborted",
)


def _is_peer_lost(message: str) -> bool:
    lowered = message.lower()
    return any(sign in lowered for sign in PEER_LOST)


def group_failure(run_dir: Path, failures: Mapping[int, Any]) -> dict[str, Any]:
    """The error record for status.json: the rank whose failure ended the group, and why.

    `failures` is torchrun's ChildFailedError.failures (global rank -> ProcessFailure). When
    one rank dies the others fail too (their collectives lose a peer, torchrun sends SIGTERM),
    often within the same second, so the cause is picked by kind before time: a rank killed
    by a signal torchrun does not send (SIGKILL: the out-of-memory killer, a user), then a
    rank's own error (recorded in ranks/rank-N.json), then an error about a lost peer.
    """
    import signal

    results = read_rank_results(run_dir)

    def recorded_error(rank: int) -> dict[str, Any] | None:
        error = (results.get(rank) or {}).get("error")
        return error if isinstance(error, dict) and error.get("message") else None

    def priority(item: tuple[int, Any]) -> tuple[int, float, int]:
        rank, failure = item
        exitcode = getattr(failure, "exitcode", None)
        error = recorded_error(rank)
        if isinstance(exitcode, int) and exitcode < 0 and -exitcode not in TORCHRUN_SIGNALS:
            kind = 0
        elif error is not None and not _is_peer_lost(str(error["message"])):
            kind = 1
        elif error is not None:
            kind = 2
        else:
            kind = 3
        return kind, float(getattr(failure, "timestamp", 0) or 0), rank

    order = sorted(failures.items(), key=priority)
    rank, failure = order[0]
    recorded = recorded_error(rank)
    pid = getattr(failure, "pid", None)
    exitcode = getattr(failure, "exitcode", None)
    others = [str(other) for other, _ in order[1:]]
    also = f" (rank {', '.join(others)} failed with it)" if others else ""
    if recorded is not None:
        return {
            "kind": str(recorded.get("kind", "internal")),
            "message": f"rank {rank} failed: {recorded['message']}{also}",
            "advice": list(recorded.get("advice") or ()),
            "step": recorded.get("step"),
            "batch_shape": recorded.get("batch_shape"),
            "rank": rank,
        }
    if isinstance(exitcode, int) and exitcode < 0:
        try:
            how = f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"was killed by signal {-exitcode}"
    else:
        how = f"exited with code {exitcode}"
    advice = [f"see {run_dir / 'ranks'} for each rank's log"]
    if exitcode == -signal.SIGKILL:
        advice.insert(
            0,
            "a rank killed without warning is often the kernel's out-of-memory killer: "
            "check `dmesg`, and host memory per process",
        )
    advice.append(f"resume from the last checkpoint: ftstudio train --resume {run_dir}")
    return {
        "kind": "rank_failed",
        "message": f"rank {rank} (pid {pid}) {how}{also}",
        "advice": advice,
        "step": None,
        "rank": rank,
    }


def group_main(argv: list[str]) -> int:
    """`python -m studio.engine.launcher <torchrun arguments>`: torchrun, recording failures."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    arguments = parse_args(argv)
    run_dir = Path(
        arguments.training_script_args[arguments.training_script_args.index("--run-dir") + 1]
    )
    # The group process is the run's process from now on: liveness checks follow its pid.
    if (run_dir / "config.yaml").is_file():
        RunDirectory(run_dir).write_status(
            pid=os.getpid(), host=this_host(), process_started=time.time()
        )
    try:
        run(arguments)
    except ChildFailedError as error:
        record = group_failure(run_dir, error.failures)
        folder = RunDirectory(run_dir)
        folder.log(f"{record['kind']}: {record['message']}", "error")
        folder.write_status(state=RunState.FAILED.value, error=record, finished=time.time())
        return 1
    return 0


# ------------------------------------------------------------ the session-like driver


class GroupSession:
    """Train a run as a torchrun group and follow it; quacks like `TrainingSession`."""

    def __init__(
        self,
        config: RunConfig,
        spec: NodeSpec,
        bus: EventBus | None = None,
        control: TrainingControl | None = None,
        *,
        visible_devices: str | None = None,
        resume_dir: str | Path | None = None,
        base_dir: str | Path | None = None,
        poll_seconds: float = 0.5,
        extra_environment: Mapping[str, str] | None = None,
        changes: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.spec = spec
        self.bus = bus or EventBus()
        self.control = control or TrainingControl()
        self.visible_devices = visible_devices
        self.resume_dir = Path(resume_dir) if resume_dir is not None else None
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.poll_seconds = poll_seconds
        self.extra_environment = dict(extra_environment or {})
        self.changes = dict(changes or {})
        self.run_dir: RunDirectory | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.device_notes: list[tuple[str, str]] = []

    def publish(self, event: RunEvent) -> None:
        self.bus.publish(event)

    def log(self, text: str, level: str = "info") -> None:
        if self.run_dir is not None:
            self.run_dir.log(text, level)
        self.publish(LogLine(text=text, level=level))

    def prepare(self) -> RunDirectory:
        """Create the run folder (or tidy a stopped one for resuming) before the ranks start."""
        from studio.engine.session import begin_resume

        process = {"pid": os.getpid(), "host": this_host(), "process_started": time.time()}
        group = {
            "processes": self.spec.processes,
            "nodes": self.spec.nodes,
            "visible_devices": self.visible_devices,
        }
        if self.resume_dir is None:
            status = {
                "state": RunState.PREPARING.value,
                "started": time.time(),
                "group": group,
                **process,
            }
            return RunDirectory.create(self.config, status=status)
        run = RunDirectory.open(self.resume_dir)
        begin_resume(run, self.config, self.changes, group=group, **process)
        return run

    def command(self) -> list[str]:
        assert self.run_dir is not None
        arguments = torchrun_arguments(
            self.spec,
            self.run_dir.path,
            resume=self.resume_dir is not None,
            base_dir=self.base_dir,
        )
        return [sys.executable, "-m", "studio.engine.launcher", *arguments]

    def environment(self) -> dict[str, str]:
        environment = dict(os.environ)
        if self.visible_devices is not None:
            environment["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
            environment["CUDA_VISIBLE_DEVICES"] = self.visible_devices
        if self.spec.processes > 1:
            # torch would give each process every core; several processes then fight.
            cores = max((os.cpu_count() or 1) // self.spec.processes, 1)
            environment.setdefault("OMP_NUM_THREADS", str(cores))
        environment.update(self.extra_environment)
        return environment

    def run(self) -> RunFinished:
        from studio.engine.follower import RunFollower

        started = time.monotonic()
        try:
            self.run_dir = self.prepare()
        except ConfigError as error:
            self.publish(
                RunError(
                    kind="config", message=error.message, advice=tuple(filter(None, [error.advice]))
                )
            )
            finished = RunFinished(RunState.FAILED, "", 0, None, None, None, 0.0)
            self.publish(finished)
            return finished
        for level, line in self.device_notes:
            self.log(line, level)
        self.log(
            f"starting {self.spec.processes} processes: "
            + shlex.join(["torchrun", *self.command()[3:]])
        )
        log_path = self.run_dir.path / "ranks" / "torchrun.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as output:
            # A session of its own: the terminal's Ctrl-C and hang-up reach this process, which
            # stops the group through its control file, never torchrun and the ranks directly.
            self.process = subprocess.Popen(
                self.command(),
                env=self.environment(),
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        follower = RunFollower(self.run_dir.path, poll_seconds=self.poll_seconds)
        forwarder = _ControlForwarder(self.control, self.run_dir.path)
        held: list[RunEvent] = []
        while True:
            alive = self.process.poll() is None
            for event in follower.poll():
                if isinstance(event, (RunError, RunFinished)):
                    held.append(event)  # the group's final word comes after its exit
                else:
                    self.publish(event)
            if not alive:
                break
            forwarder.forward()
            time.sleep(self.poll_seconds)
        ending = RunFollower(self.run_dir.path).final_events()
        for event in ending or held:
            if isinstance(event, RunFinished):
                event = RunFinished(
                    event.state,
                    event.run_dir,
                    event.steps,
                    event.final_loss,
                    event.best_eval_loss,
                    event.adapter_dir,
                    event.duration_seconds or time.monotonic() - started,
                )
            self.publish(event)
        finals = [event for event in (ending or held) if isinstance(event, RunFinished)]
        if finals:
            return finals[-1]
        return RunFinished(
            RunState.FAILED, str(self.run_dir.path), 0, None, None, None, time.monotonic() - started
        )


class _ControlForwarder:
    """Passes a local TrainingControl's commands (Ctrl-C, keys) to the group's control file."""

    def __init__(self, control: TrainingControl, run_dir: Path) -> None:
        self.control = control
        self.run_dir = run_dir
        self.stopped = False
        self.paused = False
        self._lock = threading.Lock()

    def forward(self) -> None:
        from studio.engine.remote_control import send_command

        with self._lock:
            if self.control.stop_requested and not self.stopped:
                self.stopped = True
                send_command(self.run_dir, "stop")
            if self.control.take_save_request():
                send_command(self.run_dir, "save")
            if self.control.paused != self.paused and not self.stopped:
                self.paused = self.control.paused
                send_command(self.run_dir, "pause" if self.paused else "resume")


if __name__ == "__main__":
    sys.exit(group_main(sys.argv[1:]))


# ------------------------------------------------------------ one session or a group


def session_for_config(
    config: RunConfig,
    bus: EventBus | None = None,
    control: TrainingControl | None = None,
    *,
    resume_dir: str | Path | None = None,
    changes: Mapping[str, Any] | None = None,
    snapshot: TelemetrySnapshot | None = None,
    **options: Any,
) -> Any:
    """The session that trains `config` on the devices its `devices` section chooses.

    One device: the in-process `TrainingSession`, shown only that GPU (when CUDA has not
    started yet) and kept off DataParallel. Several: a `GroupSession` through torchrun.
    `options` are TrainingSession's (base_dir, telemetry_interval).
    """
    from studio.engine.devices import cuda_started, decide_devices, pin_visible_devices
    from studio.engine.session import TrainingSession

    choice = decide_devices(config, snapshot=snapshot)
    notes = choice.log_lines()
    wanted = choice.visible_devices
    own_process = (
        wanted is not None and os.environ.get("CUDA_VISIBLE_DEVICES") != wanted and cuda_started()
    )
    if own_process:
        # CUDA runs here on other GPUs already and cannot be narrowed to the chosen one: the
        # run gets a process of its own that sees exactly that GPU.
        notes.append(
            (
                "info",
                f"devices: CUDA already started here; GPU {wanted} trains in a process of its own",
            )
        )
    if choice.distributed or own_process:
        session: Any = GroupSession(
            config,
            NodeSpec(choice.processes),
            bus,
            control,
            visible_devices=choice.visible_devices,
            resume_dir=resume_dir,
            base_dir=options.get("base_dir"),
            changes=changes,
        )
    else:
        pinned = pin_visible_devices(choice, os.environ, cuda_started())
        if pinned:
            notes.append(("info", f"devices: {pinned}"))
        session = TrainingSession(
            config, bus, control, resume_dir=resume_dir, changes=changes, **options
        )
    session.device_notes = notes
    return session


def session_for_resume(
    run_dir: str | Path,
    bus: EventBus | None = None,
    control: TrainingControl | None = None,
    *,
    changes: Mapping[str, Any] | None = None,
    **options: Any,
) -> Any:
    """Go on with a run from its last checkpoint on the devices its config chooses now."""
    from studio.engine.session import resumable_run

    run, config = resumable_run(run_dir, changes)
    return session_for_config(config, bus, control, resume_dir=run.path, changes=changes, **options)
