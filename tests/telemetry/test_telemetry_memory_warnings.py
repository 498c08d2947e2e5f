"""The one memory-warning policy (studio.telemetry.memory_warnings): its episodes, and the same
warnings on both surfaces, the headless progress (`ftstudio train`, `ftstudio runs follow`)
and the TUI's run monitor. The episodes in the real app's panel: test_ui_memory_panel.py."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest

from studio.commands.train_console import ConsoleProgress
from studio.engine.events import TelemetryEvent
from studio.telemetry import GpuSnapshot, MemoryWarningPolicy, TelemetrySnapshot, TorchMemory
from studio.telemetry.memory_warnings import LOW_GPU_MEMORY, PAGED_SPILL, SPILL_NOISE_BYTES
from studio.ui.runs.monitor import RunMonitor
from tests.telemetry.test_telemetry_advice import gpu, snapshot, spilled

GIB = 1024**3


def test_low_memory_warns_when_it_starts_only() -> None:
    roomy, tight = snapshot(gpu(used=60)), snapshot(gpu(used=76))  # 3.6 of 79.6 GiB free
    policy = MemoryWarningPolicy()
    assert policy.observe(roomy) == ()
    (warning,) = policy.observe(tight)
    assert warning.kind == LOW_GPU_MEMORY and warning.gpu_index == 0 and warning.episode == 1
    assert warning.message.startswith("GPU0 has 3.6 GiB free of 79.6 GiB, under 4.0 GiB")
    assert policy.observe(tight) == ()  # still low: no repeat
    assert policy.active() == (warning,)
    assert MemoryWarningPolicy().observe(tight)[0].kind == LOW_GPU_MEMORY  # low from the start
    # 1 % of 79.6 GiB is under the 1 GiB floor: 3.6 GiB free is plenty.
    assert MemoryWarningPolicy(low_free_fraction=0.01).observe(tight) == ()


def test_low_memory_ends_only_well_above_the_threshold() -> None:
    policy = MemoryWarningPolicy()
    policy.observe(snapshot(gpu(used=76)))
    assert policy.observe(snapshot(gpu(used=75.3))) == ()  # 4.3 GiB free: under 1.25 x 4.0
    assert [w.kind for w in policy.active()] == [LOW_GPU_MEMORY]
    policy.observe(snapshot(gpu(used=70)))
    assert policy.active() == ()
    (again,) = policy.observe(snapshot(gpu(used=76)))
    assert again.episode == 2  # a new dip is a new episode, told again


def test_spill_warns_when_spilling_starts() -> None:
    before, after = snapshot(gpu(), paged=(spilled(0.0),)), snapshot(gpu(), paged=(spilled(0.8),))
    policy = MemoryWarningPolicy()
    assert policy.observe(before) == ()
    (warning,) = policy.observe(after)
    assert warning.kind == PAGED_SPILL and "~0.8 of 3.1 GiB" in warning.message
    assert policy.observe(after) == ()
    # No estimate in a poll neither starts nor ends a spill.
    policy = MemoryWarningPolicy()
    policy.observe(before)
    assert policy.observe(snapshot(gpu(), paged=(spilled(None),))) == ()
    assert (
        MemoryWarningPolicy().observe(snapshot(gpu(), paged=(spilled(SPILL_NOISE_BYTES / GIB),)))
        == ()
    )  # noise


def test_no_gpu_has_no_warnings() -> None:
    policy = MemoryWarningPolicy()
    assert policy.observe(snapshot()) == () and policy.observe(snapshot()) == ()


def test_only_the_gpu_the_run_uses_is_watched() -> None:
    """On a shared server another user's full GPU is not this run's problem."""
    full_other = gpu(index=0, used=79)
    torch_memory = (
        TorchMemory(cuda_index=0, gpu_index=1, allocated_bytes=GIB, reserved_bytes=GIB),
    )
    policy = MemoryWarningPolicy()
    assert (
        policy.observe(snapshot(full_other, gpu(index=1, used=10), torch_memory=torch_memory)) == ()
    )
    (warning,) = policy.observe(
        snapshot(full_other, gpu(index=1, used=78), torch_memory=torch_memory)
    )
    assert warning.gpu_index == 1 and warning.message.startswith("GPU1 has")


# -------------------------------------------------------------------- both surfaces

TOTAL = 80 * GIB


def scripted_snapshots() -> list[TelemetrySnapshot]:
    """A run that dips under the low-memory threshold, spills, recovers and dips again."""
    # (free GiB, paged GiB, spilled GiB) per poll.
    script = [(20, 0, 0), (3, 6, 0), (3, 6, 2), (3.5, 6, 2), (30, 6, 0), (2, 0, 0), (2, 0, 0)]
    shots = []
    for second, (free, paged, spill) in enumerate(script):
        free_bytes = int(free * GIB)
        shots.append(
            TelemetrySnapshot(
                time=1000.0 + second,
                gpus=(
                    GpuSnapshot(
                        index=0,
                        memory_total_bytes=TOTAL,
                        memory_used_bytes=TOTAL - free_bytes,
                        memory_free_bytes=free_bytes,
                    ),
                ),
                torch_memory=(
                    TorchMemory(
                        cuda_index=0, gpu_index=0, allocated_bytes=GIB, reserved_bytes=2 * GIB
                    ),
                ),
                paged=(spilled(spill),) if paged else (),
            )
        )
    return shots


EXPECTED = [  # (poll, kind, episode) of each warning told
    (1, LOW_GPU_MEMORY, 1),
    (2, PAGED_SPILL, 2),
    (5, LOW_GPU_MEMORY, 3),
]


def test_headless_progress_and_tui_monitor_tell_the_same_warnings() -> None:
    stream = io.StringIO()
    console = ConsoleProgress(stream)
    monitor = RunMonitor()
    told_by_tui = []
    for poll, shot in enumerate(scripted_snapshots()):
        event = TelemetryEvent(snapshot=shot.to_dict(), time=shot.time)
        console(event)
        monitor.record(event)
        told_by_tui += [(poll, w.kind, w.episode, w.message) for w in monitor.take_new_warnings()]
    assert [item[:3] for item in told_by_tui] == EXPECTED
    printed = [line for line in stream.getvalue().splitlines() if line]
    assert printed == [f"memory warning: {message}" for *_, message in told_by_tui]

    # Quiet (`--quiet`: only the final summary) prints none.
    quiet = io.StringIO()
    progress = ConsoleProgress(quiet, quiet=True)
    for shot in scripted_snapshots():
        progress(TelemetryEvent(snapshot=shot.to_dict(), time=shot.time))
    assert quiet.getvalue() == ""


def test_runs_follow_prints_the_warnings_of_a_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ftstudio runs follow` replays telemetry.jsonl through the headless progress: the
    warnings come out as the TUI would notify them when attached to the same folder, and a
    damaged record is skipped by both, not a traceback."""
    from studio.cli import main
    from studio.engine.follower import replay_run

    run = tmp_path / "tight"
    run.mkdir()
    (run / "config.yaml").write_text("{}\n")
    started = time.time()
    status = {"state": "finished", "pid": os.getpid(), "step": 2, "started": started}
    (run / "status.json").write_text(json.dumps(status))
    records = [shot.to_dict() for shot in scripted_snapshots()]
    # Damaged records (a run folder is read back without trusting it) are skipped.
    records[2:2] = [{"gpus": [{"index": 0}]}, {"time": 5.0, "gpus": ["GPU0"]}]
    (run / "telemetry.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    assert main(["runs", "follow", str(run)]) == 0
    out = capsys.readouterr().out
    printed = [line for line in out.splitlines() if line.startswith("memory warning: ")]

    monitor = RunMonitor()
    told = []
    for event in replay_run(run):
        monitor.record(event)
        told += [w.message for w in monitor.take_new_warnings()]
    assert len(told) == len(EXPECTED)
    assert printed == [f"memory warning: {message}" for message in told]
