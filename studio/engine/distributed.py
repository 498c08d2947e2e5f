"""One rank of a torchrun process group: what differs from a one-process session.

torchrun (`studio.engine.launcher`) starts `python -m studio.engine.rank` once per device; each
runs an ordinary `TrainingSession` with a `RankContext`. The group writes one run folder:

- rank 0 records everything as a one-process run does (metrics, telemetry of every GPU, log,
  status, checkpoint markers), so the follower and `ftstudio runs follow` watch the group
  unchanged; the other ranks write only their own log and result under `ranks/`;
- control commands reach rank 0 through control.jsonl and every rank through a broadcast at
  each step end (`group_control_callback`), so all ranks pause, save and stop at the same step;
- the Trainer does the distributed work itself (DDP, or FSDP2 through accelerate) from the
  arguments `group_argument_values` adds.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.engine.events import LogLine, RunError, RunEvent

if TYPE_CHECKING:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from studio.config import RunConfig
    from studio.engine.run_dir import RunDirectory
    from studio.engine.session import TrainingSession
    from studio.models.loading import DevicePlan

RANKS_DIR = "ranks"
# Methods whose every trainable parameter gets a gradient at every step.
EVERY_PARAMETER_USED = frozenset({"lora", "qlora", "ia3", "full"})


def world_size(environ: Mapping[str, str] | None = None) -> int:
    """The size of the torchrun group this process belongs to (1 outside one)."""
    environ = os.environ if environ is None else environ
    try:
        return int(environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def rank_file(run_dir: Path, rank: int, suffix: str) -> Path:
    return Path(run_dir) / RANKS_DIR / f"rank-{rank}.{suffix}"


@dataclass(frozen=True)
class RankContext:
    """Where this process sits in the group, and the run folder the group writes."""

    rank: int
    local_rank: int
    world_size: int
    run_dir: Path

    @classmethod
    def from_environ(
        cls, run_dir: str | Path, environ: Mapping[str, str] | None = None
    ) -> RankContext:
        environ = os.environ if environ is None else environ
        return cls(
            rank=int(environ.get("RANK", "0")),
            local_rank=int(environ.get("LOCAL_RANK", "0")),
            world_size=int(environ.get("WORLD_SIZE", "1")),
            run_dir=Path(run_dir),
        )

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def log_path(self) -> Path:
        return rank_file(self.run_dir, self.rank, "log")

    @property
    def result_path(self) -> Path:
        return rank_file(self.run_dir, self.rank, "json")

    def barrier(self) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()

    def record(self, event: RunEvent) -> None:
        """A non-main rank's events: its log lines and errors, in its own file."""
        if isinstance(event, LogLine):
            self._append_log(event.level, event.text)
        elif isinstance(event, RunError):
            self._append_log("error", f"{event.kind}: {event.message}")

    def _append_log(self, level: str, text: str) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%H:%M:%S")
        with self.log_path.open("a", encoding="utf-8") as stream:
            stream.write(f"{stamp} [{level}] {text}\n")

    def write_result(self, **fields: Any) -> None:
        """This rank's pid, host and, at its end, its state and error: read by the launcher."""
        from studio.engine.run_dir import write_atomic

        path = self.result_path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            current = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            current = {}
        current.update(fields, rank=self.rank, local_rank=self.local_rank)
        write_atomic(path, json.dumps(current, indent=2))


def read_rank_results(run_dir: str | Path) -> dict[int, dict[str, Any]]:
    """Each rank's result file (`ranks/rank-N.json`), by rank."""
    results: dict[int, dict[str, Any]] = {}
    for path in sorted((Path(run_dir) / RANKS_DIR).glob("rank-*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            results[int(data["rank"])] = data
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return results


# ------------------------------------------------------------ the session's run folder


def open_rank_run_directory(session: TrainingSession) -> RunDirectory:
    """The run folder for a rank's session; the launcher has created or tidied it already.

    Rank 0 opens it like a one-process session (status, resume point); the others wait for
    rank 0 and then only read where to resume from.
    """
    from studio.engine.checkpoints import last_complete_checkpoint, prepare_resume
    from studio.engine.run_dir import RunDirectory, train_losses

    rank = session.rank
    assert rank is not None
    run = RunDirectory.open(rank.run_dir)
    if not rank.is_main:
        rank.barrier()  # rank 0 has prepared the folder and its resume point
        if session.resume_dir is not None:
            checkpoint = last_complete_checkpoint(run)
            if checkpoint is not None:
                session.resume_from = str(checkpoint.path)
        return run
    if session.resume_dir is None:
        run.write_status(run_name=run.name)
    else:
        previous = run.read_status()
        point = prepare_resume(run)  # the launcher did it; again is harmless and keeps it true
        session.resume_point = point
        if point.checkpoint is not None:
            session.resume_from = str(point.checkpoint.path)
        session._best_loss, session._last_loss = train_losses(run.metrics_path)
        session._step = point.step
        session._previous_duration = float(previous.get("duration_seconds") or 0.0)
        run.write_status(step=point.step, best_loss=session._best_loss, loss=session._last_loss)
    rank.barrier()
    return run


# ------------------------------------------------------------ Trainer arguments


def group_argument_values(config: RunConfig, plan: DevicePlan) -> dict[str, Any]:
    """TrainingArguments for a process in a torchrun group ({} outside one).

    DDP needs only the backend; FSDP2 goes through accelerate's plugin (fsdp_config version 2,
    wrapping each decoder layer the model names in `_no_split_modules`, full state dicts so
    checkpoints and the saved model load anywhere).
    """
    size = world_size()
    if size <= 1:
        return {}
    from studio.engine.devices import choose_strategy

    values: dict[str, Any] = {"ddp_backend": "nccl" if plan.device == "cuda" else "gloo"}
    if config.method.name in EVERY_PARAMETER_USED:
        # Skips DDP's extra graph walk for parameters that never get a gradient.
        values["ddp_find_unused_parameters"] = False
    strategy = choose_strategy(config.devices.strategy, config.method.name, size)
    if strategy == "fsdp" and plan.device == "cuda":
        values["fsdp"] = True  # the string form is deprecated in transformers 5
        values["fsdp_config"] = fsdp_config()
    return values


def fsdp_config() -> dict[str, Any]:
    return {
        "version": 2,
        "reshard_after_forward": True,
        "state_dict_type": "FULL_STATE_DICT",
        "cpu_ram_efficient_loading": False,
    }


# ------------------------------------------------------------ control for every rank

PAUSE_POLL_SECONDS = 0.5


def group_control_callback(session: TrainingSession) -> Any:
    """A TrainerCallback that gives every rank rank 0's control state at each step end.

    Rank 0's heartbeat applies control.jsonl to the session's TrainingControl (the requests);
    a broadcast turns them into one decision per step, which the callback puts into its own
    `agreed` TrainingControl, the one the engine's callback obeys. So every rank stops and
    saves at the same step (a rank that stopped alone would leave the others waiting in a
    collective). While paused the ranks wait together, re-synchronising twice a second, so a
    long pause never runs into the collective timeout.
    """
    from transformers import TrainerCallback

    from studio.engine.control import TrainingControl
    from studio.engine.events import RunState, StateChanged

    requests = session.control
    rank = session.rank
    assert rank is not None

    def exchange() -> tuple[bool, bool, bool]:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():  # a group of one: its own requests are the decision
            stop = requests.stop_requested
            return stop, requests.take_save_request(), requests.paused and not stop

        cpu_backend = "gloo" in str(dist.get_backend())
        device = "cpu" if cpu_backend else torch.device("cuda", torch.cuda.current_device())
        flags = torch.zeros(3, dtype=torch.int32, device=device)
        if rank.is_main:
            stop = requests.stop_requested
            flags[0] = int(stop)
            flags[1] = int(requests.take_save_request())
            flags[2] = int(requests.paused and not stop)
        dist.broadcast(flags, src=0)
        stop, save, paused = (bool(value) for value in flags.tolist())
        return stop, save, paused

    class GroupControl(TrainerCallback):
        def __init__(self) -> None:
            self.agreed = TrainingControl()

        def on_step_end(
            self,
            args: TrainingArguments,
            state: TrainerState,
            control: TrainerControl,
            **kwargs: Any,
        ) -> TrainerControl:
            stop, save, paused = exchange()
            if paused:
                session.publish(
                    StateChanged(RunState.PAUSED, f"paused at step {state.global_step}")
                )
                while paused and not stop:
                    time.sleep(PAUSE_POLL_SECONDS)
                    stop, more_save, paused = exchange()
                    save = save or more_save
                if not stop:
                    session.publish(StateChanged(RunState.RUNNING, "resumed"))
            if stop:
                self.agreed.stop()
            if save:
                self.agreed.request_save()
            return control

        def on_save(
            self,
            args: TrainingArguments,
            state: TrainerState,
            control: TrainerControl,
            **kwargs: Any,
        ) -> None:
            # Every rank has written its part (RNG state) before rank 0 marks it complete.
            rank.barrier()

    return GroupControl()


# ------------------------------------------------------------ the result


def save_group_result(session: TrainingSession, trainer: Any, model: Any, staging: Path) -> None:
    """Save the trained result into `staging` once for the whole group.

    Under FSDP the weights are sharded: every rank takes part in gathering the full state
    dict and the Trainer writes it from rank 0. Under DDP every rank holds the same weights
    and rank 0 saves them the usual way.
    """
    import shutil

    from studio.methods.registry import save_trained

    rank = session.rank
    assert rank is not None
    if rank.is_main:
        shutil.rmtree(staging, ignore_errors=True)
    rank.barrier()
    if getattr(trainer, "is_fsdp_enabled", False):
        trainer.save_model(str(staging))
    elif rank.is_main:
        save_trained(model, session.config.method, staging)
    rank.barrier()
