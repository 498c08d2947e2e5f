"""Which devices a run trains on, decided from the config and what the GPUs hold right now.

`choose_devices` is a pure function of the config's `devices` section, a telemetry snapshot
and the run's memory estimate; it returns the choice with the reason to log, like the fast
path does for its switches. One device trains in-process; more than one (or several CPU
processes) trains as a torchrun group (see `studio.engine.launcher`).

`pin_visible_devices` and `keep_to_one_device` make a one-device run use exactly that device:
without them transformers' Trainer wraps the model in `nn.DataParallel` over every visible GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from studio.errors import ConfigError, StudioError
from studio.formatting import gib
from studio.telemetry.fit_check import check_fit
from studio.telemetry.snapshots import GpuSnapshot, TelemetrySnapshot

if TYPE_CHECKING:
    from pathlib import Path

    from studio.config import DeviceSettings, RunConfig

Strategy = Literal["single", "ddp", "fsdp"]
# Methods that train every weight: their optimizer state is the model's size twice over, so
# several GPUs shard it (FSDP) rather than copy it (DDP).
SHARDED_METHODS = frozenset({"full"})


@dataclass(frozen=True)
class DeviceChoice:
    """The devices of one node and how the processes on them share the work."""

    gpus: tuple[int, ...]  # NVML indices; () on CPU
    processes: int  # processes on this node: one per GPU, or cpu_processes on CPU
    strategy: Strategy
    reason: str
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def distributed(self) -> bool:
        return self.processes > 1

    @property
    def on_gpu(self) -> bool:
        return bool(self.gpus)

    @property
    def visible_devices(self) -> str | None:
        """The CUDA_VISIBLE_DEVICES value that shows the processes only these GPUs."""
        return ",".join(str(index) for index in self.gpus) if self.gpus else None

    def log_lines(self) -> list[tuple[str, str]]:
        return [("info", f"devices: {self.reason}")] + [("warning", w) for w in self.warnings]


def describe_gpu(gpu: GpuSnapshot, own_pids: frozenset[int] = frozenset()) -> str:
    """'GPU3 78.0 GiB free, 5% busy, 1 other process (alice: python train.py)'."""
    parts = [f"GPU{gpu.index}"]
    free = gpu.free_bytes
    parts.append(f"{gib(free)} GiB free" if free is not None else "free memory unknown")
    if gpu.utilization_percent is not None:
        parts[-1] += f", {gpu.utilization_percent:.0f}% busy"
    others = other_processes(gpu, own_pids)
    if others is None:
        return " ".join(parts)
    if not others:
        return " ".join(parts) + ", no other processes"
    who = ", ".join(
        f"{process.user or 'pid ' + str(process.pid)}: {process.command or '?'}"
        for process in others[:2]
    )
    more = f" and {len(others) - 2} more" if len(others) > 2 else ""
    plural = "es" if len(others) > 1 else ""
    return " ".join(parts) + f", {len(others)} other process{plural} ({who}{more})"


def other_processes(gpu: GpuSnapshot, own_pids: frozenset[int] = frozenset()) -> list[Any] | None:
    if gpu.processes is None:
        return None
    return [process for process in gpu.processes if process.pid not in own_pids]


def _freest_first(gpus: tuple[GpuSnapshot, ...]) -> list[GpuSnapshot]:
    # Most free memory first; among equals the idler one, then the lower index.
    return sorted(
        gpus,
        key=lambda gpu: (
            -(gpu.free_bytes if gpu.free_bytes is not None else -1),
            gpu.utilization_percent if gpu.utilization_percent is not None else 100.0,
            gpu.index,
        ),
    )


def choose_strategy(requested: str, method: str, processes: int) -> Strategy:
    if processes <= 1:
        return "single"
    if requested in ("ddp", "fsdp"):
        return requested  # type: ignore[return-value]
    return "fsdp" if method in SHARDED_METHODS else "ddp"


def per_process_bytes(estimate_bytes: int | None, strategy: str, processes: int) -> int | None:
    """What one process needs: all of it under DDP; FSDP shards most of it over the group."""
    if estimate_bytes is None:
        return None
    if strategy == "fsdp" and processes > 1:
        return int(estimate_bytes / processes)
    return estimate_bytes


def choose_devices(
    settings: DeviceSettings,
    snapshot: TelemetrySnapshot,
    *,
    method: str,
    estimate_bytes: int | None = None,
    own_pids: frozenset[int] = frozenset(),
) -> DeviceChoice:
    """The devices for a run with `settings` (a config's `devices` section).

    `snapshot` is what NVML sees now (no GPUs: the run is on CPU); `estimate_bytes` the
    run's memory estimate for one process holding the whole model (None: not known, every GPU
    counts as fitting). Raises ConfigError for a GPU index the machine does not have.
    """
    asked = settings.indices
    if not snapshot.gpus:
        if asked is not None:
            raise ConfigError(
                f"devices.gpus asks for GPU {settings.gpus} but no GPU is visible "
                f"({snapshot.gpu_unavailable_reason or 'NVML found none'})",
                advice="set devices.gpus to auto to train on the CPU",
            )
        processes = settings.cpu_processes
        strategy = choose_strategy(settings.strategy, method, processes)
        if processes == 1:
            return DeviceChoice((), 1, "single", "CPU: no GPU is visible")
        notes: tuple[str, ...] = ()
        if strategy == "fsdp":
            # accelerate shards only on accelerator groups (MULTI_CPU never becomes FSDP).
            notes = (
                "FSDP needs GPUs: the CPU processes train with DDP, each holding the whole model",
            )
            strategy = "ddp"
        return DeviceChoice(
            (),
            processes,
            strategy,
            f"CPU: {processes} processes ({strategy}, gloo), no GPU",
            notes,
        )
    if asked is not None:
        missing = [index for index in asked if snapshot.gpu(index) is None]
        if missing:
            have = ", ".join(str(gpu.index) for gpu in snapshot.gpus)
            raise ConfigError(
                f"devices.gpus names GPU {', '.join(map(str, missing))}, which this machine "
                f"does not have (it has {have})",
                advice="pick indices as nvidia-smi lists them, or devices.gpus: auto",
            )
        picked = [gpu for gpu in map(snapshot.gpu, asked) if gpu is not None]  # none missing
        strategy = choose_strategy(settings.strategy, method, len(asked))
        need = per_process_bytes(estimate_bytes, strategy, len(asked))
        picked_warnings = _warnings_for(picked, snapshot, need, own_pids)
        names = "; ".join(describe_gpu(gpu, own_pids) for gpu in picked)
        how = "" if strategy == "single" else f" ({strategy})"
        return DeviceChoice(
            tuple(asked),
            len(asked),
            strategy,
            f"as configured{how}: {names}",
            tuple(picked_warnings),
        )
    count = min(settings.gpu_count, len(snapshot.gpus))
    strategy = choose_strategy(settings.strategy, method, count)
    need = per_process_bytes(estimate_bytes, strategy, count)
    ranked = _freest_first(snapshot.gpus)
    fitting = [gpu for gpu in ranked if _fits(gpu, snapshot, need)]
    warnings: list[str] = []
    if settings.gpu_count > len(snapshot.gpus):
        warnings.append(
            f"devices.gpu_count is {settings.gpu_count} but the machine has "
            f"{len(snapshot.gpus)} GPUs: using {count}"
        )
    if len(fitting) >= count:
        chosen = fitting[:count]
        why = "the most free memory"
        if need is not None:
            why += f", and the run's ~{gib(need)} GiB fits"
    else:
        chosen = ranked[:count]
        why = "the most free memory, though the run may not fit"
        warnings.extend(_warnings_for(chosen, snapshot, need, own_pids))
    names = "; ".join(describe_gpu(gpu, own_pids) for gpu in chosen)
    how = "" if strategy == "single" else f" ({strategy})"
    return DeviceChoice(
        tuple(gpu.index for gpu in chosen),
        count,
        strategy,
        f"auto{how}: {names} — {why}",
        tuple(warnings),
    )


def _fits(gpu: GpuSnapshot, snapshot: TelemetrySnapshot, need: int | None) -> bool:
    if need is None:
        return True
    advice = check_fit(need, snapshot, gpu.index)
    return advice is None or advice.fits


def _warnings_for(
    gpus: list[GpuSnapshot],
    snapshot: TelemetrySnapshot,
    need: int | None,
    own_pids: frozenset[int],
) -> list[str]:
    warnings = []
    for gpu in gpus:
        if need is not None:
            advice = check_fit(need, snapshot, gpu.index)
            if advice is not None:
                warnings.append(advice.message)
        others = other_processes(gpu, own_pids)
        if others:
            warnings.append(f"GPU{gpu.index} is shared: {describe_gpu(gpu, own_pids)}")
    return warnings


# ------------------------------------------------------------ one device means one device


def pin_visible_devices(
    choice: DeviceChoice, environ: MutableMapping[str, str], cuda_started: bool
) -> str | None:
    """Show this process only the chosen GPU(s) through CUDA_VISIBLE_DEVICES.

    Only possible before CUDA starts in the process; returns what was done, for the log
    (None when nothing needed doing). NVML indices and CUDA's order agree only with
    CUDA_DEVICE_ORDER=PCI_BUS_ID, so that is set too.
    """
    wanted = choice.visible_devices
    if wanted is None or environ.get("CUDA_VISIBLE_DEVICES") == wanted:
        return None
    if cuda_started:
        return (
            f"CUDA already started in this process: cannot narrow it to GPU {wanted}; "
            "training on the first visible GPU"
        )
    environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    environ["CUDA_VISIBLE_DEVICES"] = wanted
    return f"CUDA_VISIBLE_DEVICES={wanted}"


def keep_to_one_device(trainer: Any, log: Callable[[str, str], None] | None = None) -> bool:
    """Undo the Trainer's silent nn.DataParallel on a host with several visible GPUs.

    The Trainer sets `n_gpu` to every visible GPU outside a distributed launch, multiplies the
    batch by it and wraps the model in DataParallel; a one-device run must not. Returns True
    when it had to step in."""
    args = trainer.args
    if getattr(args, "_n_gpu", 1) <= 1:
        return False
    seen = args._n_gpu
    args._n_gpu = 1
    trainer._train_batch_size = args.train_batch_size
    if log is not None:
        log(f"{seen} GPUs visible: training on one (no DataParallel)", "info")
    return True


# ------------------------------------------------------------ the machine, now


def cuda_started() -> bool:
    """Whether this process may have started CUDA, after which CUDA_VISIBLE_DEVICES is fixed.

    `torch.cuda.is_initialized()` is not enough: `torch.cuda.is_available()` already starts the
    driver (cuInit reads CUDA_VISIBLE_DEVICES) without initialising torch's CUDA state. The
    driver library being loaded says it may have run; without /proc, torch being imported
    counts as started.
    """
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_initialized():
                return True
        except (AttributeError, RuntimeError):
            return True
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any("libcuda.so" in line for line in maps)
    except OSError:
        return torch is not None


def estimate_for(config: RunConfig, base_dir: str | Path | None = None) -> int | None:
    """The run's memory estimate in bytes, when the model is local (None otherwise)."""
    from studio.models.sources import resolve_model_source

    try:
        source = resolve_model_source(config.model.source)
        if not source.is_local:
            return None
        from studio.methods.memory import estimate_run

        return int(estimate_run(config, source.location, device="cuda").total)
    except (OSError, ValueError, KeyError, TypeError, StudioError):
        return None


def decide_devices(
    config: RunConfig,
    *,
    snapshot: TelemetrySnapshot | None = None,
    estimate_bytes: int | None = None,
) -> DeviceChoice:
    """`choose_devices` for `config` on this machine as it is now."""
    import os

    if snapshot is None:
        from studio.telemetry import TelemetrySampler

        sampler = TelemetrySampler()
        try:
            snapshot = sampler.sample_once()
        finally:
            sampler.close()
    if estimate_bytes is None and snapshot.gpus:
        estimate_bytes = estimate_for(config)
    return choose_devices(
        config.devices,
        snapshot,
        method=config.method.name,
        estimate_bytes=estimate_bytes,
        own_pids=frozenset({os.getpid()}),
    )


def nvml_index_for(local_rank: int = 0, environ: Mapping[str, str] | None = None) -> int:
    """NVML's index of the GPU this process trains on (CUDA device `local_rank`).

    The launcher shows each process its GPUs through CUDA_VISIBLE_DEVICES in PCI bus order,
    so the n-th visible device is the n-th index listed there; without it they agree.
    """
    import os

    environ = os.environ if environ is None else environ
    listed = [part.strip() for part in environ.get("CUDA_VISIBLE_DEVICES", "").split(",")]
    if len(listed) > local_rank and all(part.isdigit() for part in listed):
        return int(listed[local_rank])
    return local_rank
