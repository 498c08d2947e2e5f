"""Out-of-memory triage: what a run was doing when memory ran out, what would fit, relaunch.

`diagnose(run)` reads the run's status.json (the error, the step in flight and its batch
shape), config.yaml and telemetry.jsonl (the memory curve up to the failure) and offers the
concrete changes that lower memory — `studio.engine.errors.out_of_memory_choices`, each a set
of config changes. `relaunch(run, choice)` applies one and goes on from the last complete
checkpoint in the same run directory (or, when the change makes the old weights useless, starts
a new run next to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.engine.checkpoints import last_complete_checkpoint
from studio.engine.errors import MemoryChoice, out_of_memory_choices
from studio.errors import ConfigError
from studio.formatting import GIB
from studio.runs.catalog import load_run_config, run_status

if TYPE_CHECKING:
    from studio.engine.control import TrainingControl
    from studio.engine.events import EventBus
    from studio.telemetry.snapshots import TelemetrySnapshot


@dataclass(frozen=True)
class OutOfMemoryTriage:
    run: Path
    message: str
    step: int | None  # the step that ran out of memory
    max_steps: int | None
    batch_shape: tuple[int, ...] | None  # (examples, tokens) of the batch in flight
    batch_size: int
    gradient_accumulation: int
    max_length: int
    method: str
    memory_series: str | None  # which measurement memory_curve holds
    memory_curve: tuple[tuple[float, int], ...]  # (seconds since the first sample, bytes)
    memory_total_bytes: int | None
    last_checkpoint: int | None
    choices: tuple[MemoryChoice, ...]

    @property
    def peak_bytes(self) -> int | None:
        return max((value for _, value in self.memory_curve), default=None)

    def choice(self, key: str) -> MemoryChoice:
        for choice in self.choices:
            if choice.key == key:
                return choice
        known = ", ".join(choice.key for choice in self.choices)
        raise ConfigError(f"no change '{key}' is offered for this run", advice=f"offered: {known}")

    def describe(self) -> str:
        lines = [f"run {self.run.name} ran out of memory: {self.message}"]
        where = f"at step {self.step}" if self.step else "before the first step"
        if self.max_steps:
            where += f" of {self.max_steps}"
        lines.append(f"  {where}, with {self.method}")
        batch = f"batch_size {self.batch_size} x gradient_accumulation {self.gradient_accumulation}"
        if self.batch_shape:
            batch += f"; the batch in flight: {' x '.join(map(str, self.batch_shape))} tokens"
        lines.append(f"  {batch}; data.max_length {self.max_length}")
        if self.peak_bytes is not None:
            total = f" of {self.memory_total_bytes / GIB:.1f}" if self.memory_total_bytes else ""
            lines.append(
                f"  memory ({self.memory_series}): peak {self.peak_bytes / GIB:.2f}{total} GiB "
                f"over {len(self.memory_curve)} samples"
            )
        start = f"checkpoint-{self.last_checkpoint}" if self.last_checkpoint else "step 0"
        lines.append(f"  a relaunch goes on from {start}")
        lines.append("changes that would fit:")
        for number, choice in enumerate(self.choices, 1):
            keeps = {
                "everything": "",
                "weights": " (optimizer state starts fresh)",
                "nothing": " (a new run from step 0)",
            }[choice.carry]
            lines.append(f"  {number}. [{choice.key}] {choice.title}{keeps}")
        return "\n".join(lines)


def memory_curve(run: Path) -> tuple[str | None, tuple[tuple[float, int], ...], int | None]:
    """(series name, points, total bytes) from telemetry.jsonl: the first GPU's torch
    allocation when there is one, else its NVML used memory, else the process's RSS."""
    from studio.telemetry import read_telemetry_jsonl

    path = run / "telemetry.jsonl"
    snapshots = read_telemetry_jsonl(path) if path.exists() else []
    if not snapshots:
        return None, (), None
    origin = snapshots[0].time

    def pick(name: str, read: Any, total: Any) -> Any:
        points = []
        for snapshot in snapshots:
            value = read(snapshot)
            if value is not None:
                points.append((round(snapshot.time - origin, 2), int(value)))
        if not points:
            return None
        return name, tuple(points), total(snapshots[-1])

    def torch_allocated(snapshot: TelemetrySnapshot) -> int | None:
        return snapshot.torch_memory[0].allocated_bytes if snapshot.torch_memory else None

    def gpu_used(snapshot: TelemetrySnapshot) -> int | None:
        return snapshot.gpus[0].memory_used_bytes if snapshot.gpus else None

    def gpu_total(snapshot: TelemetrySnapshot) -> int | None:
        return snapshot.gpus[0].memory_total_bytes if snapshot.gpus else None

    for option in (
        pick("torch allocated", torch_allocated, gpu_total),
        pick("GPU used", gpu_used, gpu_total),
        pick("process RSS", lambda s: s.host.process_rss_bytes, lambda s: s.host.ram_total_bytes),
    ):
        if option is not None:
            return option
    return None, (), None


def diagnose(run: str | Path) -> OutOfMemoryTriage | None:
    """The triage of a run that died of out-of-memory; None for any other run."""
    run = Path(run)
    status = run_status(run)
    error = status.get("error")
    if not isinstance(error, dict) or error.get("kind") != "out_of_memory":
        return None
    config = load_run_config(run)
    series, curve, total = memory_curve(run)
    checkpoint = last_complete_checkpoint(run)
    shape = error.get("batch_shape")
    return OutOfMemoryTriage(
        run=run,
        message=str(error.get("message", "out of memory")),
        step=error.get("step"),
        max_steps=status.get("max_steps") or config.training.max_steps,
        batch_shape=tuple(shape) if shape else None,
        batch_size=config.training.batch_size,
        gradient_accumulation=config.training.gradient_accumulation,
        max_length=config.data.max_length,
        method=config.method.name,
        memory_series=series,
        memory_curve=curve,
        memory_total_bytes=total,
        last_checkpoint=checkpoint.step if checkpoint else None,
        choices=out_of_memory_choices(config),
    )


def relaunch_session(
    run: str | Path,
    choice: MemoryChoice | str,
    bus: EventBus | None = None,
    control: TrainingControl | None = None,
    **options: Any,
) -> Any:
    """A `TrainingSession` (not started) that relaunches `run` with `choice` applied.

    Run it on the trainer worker like any session. `options` go to the session
    (base_dir, telemetry_interval)."""
    from studio.config import config_with_changes
    from studio.engine.session import TrainingSession

    run = Path(run)
    if isinstance(choice, str):
        triage = diagnose(run)
        choices = triage.choices if triage else out_of_memory_choices(load_run_config(run))
        choice = next((item for item in choices if item.key == choice), None) or _unknown(
            choice, choices
        )
    if choice.carry == "nothing":
        # The old weights do not fit the new setup: a new run beside the old one.
        config = config_with_changes(load_run_config(run), choice.overrides)
        config.output.runs_dir = str(run.parent)
        config.output.run_name = f"{run.name}-{choice.key.replace('_', '-')}"[:100]
        return TrainingSession(config, bus, control, **options)
    return TrainingSession.resume(
        run, bus, control, changes=choice.overrides, carry=choice.carry, **options
    )


def _unknown(key: str, choices: tuple[MemoryChoice, ...]) -> MemoryChoice:
    known = ", ".join(choice.key for choice in choices)
    raise ConfigError(f"no change '{key}' is offered for this run", advice=f"offered: {known}")


def relaunch(
    run: str | Path,
    choice: MemoryChoice | str,
    bus: EventBus | None = None,
    control: TrainingControl | None = None,
    **options: Any,
) -> Any:
    """Relaunch `run` with `choice` applied and train to the end (blocking)."""
    return relaunch_session(run, choice, bus, control, **options).run()
