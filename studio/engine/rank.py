"""One process of a torchrun group: `python -m studio.engine.rank --run-dir runs/<name>`.

torchrun starts this once per device (see `studio.engine.launcher`). It joins the process
group, trains the run folder's config with a rank-aware `TrainingSession`, and leaves its
result in `ranks/rank-N.json` for the launcher. With `--config` and a run folder that does not
exist yet (a node of a multi-node or Slurm job), global rank 0 creates the folder first.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from studio.engine.distributed import RankContext


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m studio.engine.rank")
    parser.add_argument("--run-dir", required=True, help="the run folder the group writes")
    parser.add_argument("--config", help="run config, for a run folder not created yet")
    parser.add_argument("--resume", action="store_true", help="go on from the last checkpoint")
    parser.add_argument("--base-dir", help="folder that relative data paths start from")
    return parser


def join_process_group(rank: RankContext) -> None:
    """NCCL on GPUs (one per local rank), gloo on CPU; the Trainer reuses this group."""
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available():
        torch.cuda.set_device(rank.local_rank)
        # gloo beside NCCL: FSDP2's CPU offload and CPU-side collectives need it (accelerate
        # picks the same pair when it makes the group itself).
        dist.init_process_group("cuda:nccl,cpu:gloo")
    else:
        dist.init_process_group("gloo")


def create_run_folder(run_dir: Path, config_path: str) -> None:
    """Global rank 0 of a multi-node job makes the shared run folder from the config."""
    from studio.config import dump_config, load_config
    from studio.engine.liveness import this_host
    from studio.engine.run_dir import RunDirectory, write_atomic

    config = load_config(config_path)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Private like every run folder (issue 18), unless the config shares it with the group.
    run = RunDirectory(run_dir, shared=bool(config.output.share_with_group))
    run_dir.chmod(run.dir_mode)
    run.create_control_file()
    write_atomic(run.config_path, dump_config(config), run.file_mode)
    run.write_status(
        state="preparing",
        started=time.time(),
        run_name=run.name,
        pid=os.getpid(),
        host=this_host(),
        process_started=time.time(),
    )


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    run_dir = Path(options.run_dir)
    rank = RankContext.from_environ(run_dir)
    if rank.world_size > 1:  # a group of one (a GPU of its own) needs no collectives
        join_process_group(rank)
    if rank.is_main and options.config and not (run_dir / "config.yaml").is_file():
        create_run_folder(run_dir, options.config)
    rank.barrier()
    rank.write_result(pid=os.getpid(), host=os.uname().nodename, state="running")

    from studio.config import load_config
    from studio.engine.events import EventBus, RunError
    from studio.engine.session import TrainingSession

    bus = EventBus()
    errors: list[RunError] = []
    bus.subscribe(lambda event: errors.append(event) if isinstance(event, RunError) else None)
    config = load_config(run_dir / "config.yaml")
    session = TrainingSession(
        config,
        bus,
        resume_dir=run_dir if options.resume else None,
        rank=rank,
        telemetry_interval=1.0,
        base_dir=Path(options.base_dir) if options.base_dir else None,
    )
    result = session.run()
    error = errors[-1] if errors else None
    rank.write_result(
        state=result.state.value,
        steps=result.steps,
        error=None
        if error is None
        else {
            "kind": error.kind,
            "message": error.message,
            "advice": list(error.advice),
            "step": error.step,
            # What the rank was training when it failed: the out-of-memory triage reads it.
            "batch_shape": list(session.batch_shape) if session.batch_shape else None,
        },
    )
    import torch.distributed as dist

    if dist.is_initialized() and error is None:
        dist.destroy_process_group()
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main())
