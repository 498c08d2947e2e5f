"""Two CPU processes (torchrun, gloo) training the tiny model as one group.

DDP of 2 x batch 2 must give the losses of one process with batch 4 (same examples per step:
accelerate hands each rank every other batch of the same shuffled order, and transformers
averages the loss over the tokens of the whole group). Stop through the control file ends
both ranks with a checkpoint, a resume from it goes on with the very same losses, and a rank
killed with SIGKILL fails the run naming that rank, leaving the last checkpoint resumable.

Group runs cost about 45 s each on 2 busy cores (process start-up and imports, not steps), so
one chain of three runs serves every test: trained, stopped at a step, resumed and killed
(rank 1, SIGKILL) after a later checkpoint, resumed again to the end. Its losses, 1..STEPS,
must equal the one-process run's: any step trained on other examples or from other weights
after a stop, a kill or a resume would show.

FSDP is not run here: accelerate 1.15 turns a CPU group (DistributedType.MULTI_CPU) into FSDP
never (AcceleratorState sets DistributedType.FSDP only for accelerator groups), so on CPU the
engine logs that and trains with DDP (tests/engine/test_engine_devices.py); the FSDP2 arguments are
checked in tests/engine/test_engine_launch_commands.py and on a GPU machine (`-m gpu`).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from studio.config import config_from_dict
from studio.engine.checkpoints import COMPLETE_MARKER, last_complete_checkpoint, resume_problem
from studio.engine.events import EventBus, RunError, RunState, StepMetrics
from studio.engine.launcher import GroupSession, session_for_config, session_for_resume
from studio.engine.remote_control import send_command
from studio.engine.run_dir import RunDirectory, read_metrics
from studio.engine.session import TrainingSession
from tests.conftest import REPO, SAMPLE_DATA

pytestmark = pytest.mark.slow

STEPS = 30
SAVE_STEPS = 10  # periodic checkpoints at 10, 20: the kill waits for one
# Same examples and the same arithmetic up to the order of float sums (measured: about 1e-7).
LOSS_TOLERANCE = 1e-4


def settings(runs: Path, **training: Any) -> dict[str, Any]:
    return {
        "model": {"source": "tiny-demo"},
        "method": {"name": "lora", "rank": 8, "alpha": 16, "dropout": 0.0},
        "data": {"path": str(SAMPLE_DATA / "alpaca_en.jsonl"), "max_length": 128},
        "training": {
            "max_steps": STEPS,
            "batch_size": 2,
            "logging_steps": 1,
            "learning_rate": 0.003,
            "seed": 42,
            **training,
        },
        "output": {"runs_dir": str(runs)},
        "devices": {"cpu_processes": 2},
    }


def losses(run_dir: Path) -> dict[int, float]:
    records = read_metrics(run_dir / "metrics.jsonl")
    return {r["step"]: r["loss"] for r in records if r.get("type") == "train"}


def assert_same_losses(got: dict[int, float], want: dict[int, float]) -> None:
    assert got.keys() == want.keys()
    for step, loss in got.items():
        assert loss == pytest.approx(want[step], rel=LOSS_TOLERANCE), f"step {step}"


class Group:
    """A group session on a thread, with its events, so a test can act while it trains."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.events: list[Any] = []
        session.bus.subscribe(self.events.append)
        self.result: Any = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.result = self.session.run()

    def run_dir(self, timeout: float = 60) -> Path:
        deadline = time.monotonic() + timeout
        while self.session.run_dir is None:
            assert time.monotonic() < deadline, "the group never made its run folder"
            time.sleep(0.1)
        return self.session.run_dir.path

    def wait_for(self, condition: Any, what: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.thread.is_alive(), f"the run ended before {what}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    def finish(self, timeout: float = 300) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the group did not end"
        return self.result


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One process with batch 4; and the group's stop / resume + kill / resume chain."""
    runs = tmp_path_factory.mktemp("distributed")
    single = settings(runs, batch_size=4)
    single["devices"] = {"cpu_processes": 1}
    seen: dict[str, Any] = {"seconds": {}}
    started = time.monotonic()
    one = TrainingSession(config_from_dict(single), base_dir=REPO, telemetry_interval=None).run()
    seen["one"] = Path(one.run_dir)
    seen["seconds"]["one process"] = time.monotonic() - started

    # 1. Train; once step 2 is logged pause, save while paused, resume, and stop, all through
    # the control file (as `ftstudio runs` and an attached studio send them).
    started = time.monotonic()
    config = config_from_dict(settings(runs, save_steps=SAVE_STEPS))
    group = Group(session_for_config(config, EventBus(), base_dir=REPO))
    run = seen["run"] = group.run_dir()
    group.wait_for(lambda: max(losses(run), default=0) >= 2, "step 2")
    send_command(run, "pause")
    group.wait_for(lambda: "state: paused paused at step" in log_of(run), "the pause")
    paused_at = int(log_of(run).split("state: paused paused at step ")[1].split()[0])
    logged = max(losses(run))
    time.sleep(2.0)
    seen["paused"] = (paused_at, logged, max(losses(run)))
    send_command(run, "save")
    send_command(run, "resume")
    group.wait_for(lambda: max(losses(run)) > paused_at, "a step after the pause")
    send_command(run, "stop")
    seen["stop"] = (group, group.finish())
    seen["stop_checkpoint"] = last_complete_checkpoint(run)
    seen["stop_ranks"] = ranks_of(run)
    seen["stop_losses"] = losses(run)
    seen["seconds"]["stopped run"] = time.monotonic() - started

    # 2. Resume, and kill rank 1 once a checkpoint after the stop is complete.
    started = time.monotonic()
    stop_step = seen["stop"][1].steps
    group = Group(session_for_resume(run, EventBus(), base_dir=REPO))
    assert isinstance(group.session, GroupSession)

    def later_checkpoint() -> bool:
        checkpoint = last_complete_checkpoint(run)
        return checkpoint is not None and checkpoint.step > stop_step

    group.wait_for(later_checkpoint, "a checkpoint after the resume")
    rank_one = ranks_of(run)[1]
    os.kill(rank_one["pid"], signal.SIGKILL)
    seen["killed"] = (group, group.finish(), rank_one["pid"])
    seen["killed_status"] = json.loads((run / "status.json").read_text(encoding="utf-8"))
    seen["killed_checkpoint"] = last_complete_checkpoint(run)
    seen["killed_resume_problem"] = resume_problem(RunDirectory.open(run))
    seen["seconds"]["resumed and killed"] = time.monotonic() - started

    # 3. Resume again, to the end.
    started = time.monotonic()
    group = Group(session_for_resume(run, EventBus(), base_dir=REPO))
    seen["final"] = (group, group.finish())
    seen["seconds"]["resumed to the end"] = time.monotonic() - started
    print("distributed chain timings:", seen["seconds"])
    return seen


def log_of(run: Path) -> str:
    try:
        return (run / "log.txt").read_text(encoding="utf-8")
    except OSError:
        return ""


def ranks_of(run: Path) -> dict[int, dict[str, Any]]:
    from studio.engine.distributed import read_rank_results

    return read_rank_results(run)


def test_a_ddp_group_of_two_matches_one_process_with_the_same_global_batch(chain) -> None:
    group, result = chain["final"]
    run = chain["run"]
    assert result.state is RunState.FINISHED and result.steps == STEPS
    assert_same_losses(losses(run), losses(chain["one"]))
    # Rank 0 wrote the folder; the follower bridged its steps into the launcher's events.
    steps = sorted({e.step for e in group.events if isinstance(e, StepMetrics)})
    assert steps[-1] == STEPS and len(steps) == STEPS  # the whole history, replayed then live
    status = json.loads((run / "status.json").read_text(encoding="utf-8"))
    assert status["state"] == "finished" and status["group"]["processes"] == 2
    assert len(status["resumes"]) == 2
    assert (run / "adapter" / "adapter_config.json").is_file()
    for ranked in ranks_of(run).values():
        assert ranked["state"] == "finished" and ranked["error"] is None
    log = (run / "log.txt").read_text(encoding="utf-8")
    assert "devices: CPU: 2 processes (ddp, gloo)" in log and "starting 2 processes" in log


def test_stop_through_the_control_file_ends_both_ranks_with_a_checkpoint(chain) -> None:
    _group, stopped = chain["stop"]
    assert stopped.state is RunState.STOPPED
    step = stopped.steps
    assert 2 <= step < STEPS
    assert chain["stop_checkpoint"] is not None and chain["stop_checkpoint"].step == step
    ranks = chain["stop_ranks"]
    assert sorted(ranks) == [0, 1]
    for ranked in ranks.values():
        assert ranked["state"] == "stopped" and ranked["steps"] == step
    full = losses(chain["one"])
    assert_same_losses(chain["stop_losses"], {s: v for s, v in full.items() if s <= step})


def test_pause_holds_every_rank_and_save_while_paused_checkpoints_that_step(chain) -> None:
    paused_at, logged, after_two_seconds = chain["paused"]
    assert logged <= paused_at and after_two_seconds == logged  # no step while paused
    log = log_of(chain["run"])
    # The save command is a checkpoint of the step it was paused at, marked as asked for (a
    # pause that lands on a periodic save step shares that checkpoint, so the step alone
    # cannot tell them apart).
    assert f"checkpoint saved at step {paused_at}" in log
    checkpoint = chain["run"] / "checkpoints" / f"checkpoint-{paused_at}"
    marker = json.loads((checkpoint / COMPLETE_MARKER).read_text(encoding="utf-8"))
    assert marker["requested"] is True and marker["step"] == paused_at


def test_a_killed_rank_fails_the_run_naming_it_and_leaves_a_resumable_checkpoint(chain) -> None:
    group, result, pid = chain["killed"]
    assert result.state is RunState.FAILED
    status = chain["killed_status"]
    assert status["state"] == "failed" and status["error"]["rank"] == 1
    message = status["error"]["message"]
    assert message.startswith(f"rank 1 (pid {pid}) was killed by SIGKILL"), message
    errors = [e for e in group.events if isinstance(e, RunError)]
    assert errors and errors[-1].message == message
    assert chain["killed_resume_problem"] is None
    assert chain["killed_checkpoint"].step > chain["stop"][1].steps


def test_resume_after_the_stop_and_after_the_kill_goes_on_exactly(chain) -> None:
    """The chain's losses are the uninterrupted one-process run's, step for step."""
    assert_same_losses(losses(chain["run"]), losses(chain["one"]))
    assert chain["final"][1].steps == STEPS


def test_a_node_command_creates_and_trains_the_shared_run_folder(tmp_path: Path) -> None:
    """What `ftstudio train --nodes ... --launch` runs on a node, here a one-node group meeting
    at a c10d rendezvous: global rank 0 creates the run folder from the config and trains."""
    import socket
    import subprocess
    import sys

    from studio.config import save_config
    from studio.engine.launcher import NodeSpec, torchrun_arguments

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = settings(tmp_path / "runs", max_steps=2)
    data["output"]["run_name"] = "shared"
    data["devices"] = {"cpu_processes": 1}
    config_path = tmp_path / "shared.config.yaml"
    save_config(config_from_dict(data), config_path)
    run = tmp_path / "runs" / "shared"
    spec = NodeSpec(1, nodes=1, node_rank=0, rendezvous=f"127.0.0.1:{port}", run_id="t")
    arguments = torchrun_arguments(spec, run, config_path=config_path, base_dir=REPO)
    assert "--rdzv-backend=c10d" in arguments
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", *arguments],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    status = json.loads((run / "status.json").read_text(encoding="utf-8"))
    assert status["state"] == "finished" and status["step"] == 2
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert sorted(losses(run)) == [1, 2]
