"""Before a run: will its estimated memory fit in what is free, and what would make it fit.

Compares the estimate with free GPU memory (NVML) or, with no GPU, with available host RAM.
The optional keyword hints mirror the run config's fields (`method`, `batch_size`, ...) so the
advice names concrete values; without them it stays general.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.formatting import gib
from studio.telemetry.snapshots import TelemetrySnapshot

# Under 10% spare the run may still die on fragmentation or an eval batch: warn as "tight".
DEFAULT_HEADROOM_FRACTION = 0.10


@dataclass(frozen=True)
class FitAdvice:
    """A warning that a run will not fit (`fits` False) or only barely (`fits` True)."""

    fits: bool
    device: str  # "GPU0" or "host RAM"
    needed_bytes: int
    available_bytes: int
    message: str
    suggestions: tuple[str, ...]

    @property
    def shortfall_bytes(self) -> int:
        return max(self.needed_bytes - self.available_bytes, 0)


def check_fit(
    estimate_bytes: int,
    snapshot: TelemetrySnapshot,
    device_index: int = 0,
    *,
    method: str | None = None,
    batch_size: int | None = None,
    gradient_accumulation: int | None = None,
    max_length: int | None = None,
    gradient_checkpointing: bool | None = None,
    optimizer: str | None = None,
    headroom_fraction: float = DEFAULT_HEADROOM_FRACTION,
) -> FitAdvice | None:
    """None when the run fits with headroom, or when free memory is not known.

    `device_index` is NVML's GPU index. With no GPU view at all, host RAM available is used.
    """
    if snapshot.gpus:
        gpu = snapshot.gpu(device_index)
        available = gpu.memory_free_bytes if gpu is not None else None
        device = f"GPU{device_index}"
    else:
        available = snapshot.host.ram_available_bytes
        device = "host RAM"
    if available is None or estimate_bytes <= available * (1 - headroom_fraction):
        return None
    fits = estimate_bytes <= available
    verdict = "fits only barely in" if fits else "does not fit in"
    message = (
        f"The run needs about {gib(estimate_bytes)} GiB and {verdict} the "
        f"{gib(available)} GiB {'available in' if device == 'host RAM' else 'free on'} "
        f"{device}."
    )
    return FitAdvice(
        fits=fits,
        device=device,
        needed_bytes=int(estimate_bytes),
        available_bytes=int(available),
        message=message,
        suggestions=_suggestions(
            on_gpu=bool(snapshot.gpus),
            method=method,
            batch_size=batch_size,
            gradient_accumulation=gradient_accumulation,
            max_length=max_length,
            gradient_checkpointing=gradient_checkpointing,
            optimizer=optimizer,
        ),
    )


def _suggestions(
    *,
    on_gpu: bool,
    method: str | None,
    batch_size: int | None,
    gradient_accumulation: int | None,
    max_length: int | None,
    gradient_checkpointing: bool | None,
    optimizer: str | None,
) -> tuple[str, ...]:
    advice: list[str] = []
    method_name = (method or "").lower()
    if on_gpu and method_name != "qlora":
        advice.append(
            "Switch to QLoRA (method: qlora): the base weights load in 4-bit NF4, about a "
            "quarter of their 16-bit size."
        )
    if batch_size is not None and batch_size > 1:
        smaller = max(batch_size // 2, 1)
        accumulation = (gradient_accumulation or 1) * (batch_size // smaller)
        advice.append(
            f"Set batch_size {batch_size} -> {smaller} and gradient_accumulation "
            f"{gradient_accumulation or 1} -> {accumulation}: same effective batch, about half "
            "the activation memory."
        )
    elif batch_size is None:
        advice.append(
            "Halve batch_size and double gradient_accumulation: same effective batch, about "
            "half the activation memory."
        )
    if gradient_checkpointing is not True:
        advice.append(
            "Enable gradient_checkpointing: activations are recomputed in the backward pass, "
            "much less memory for about 30% more time."
        )
    if max_length is not None and max_length > 256:
        advice.append(
            f"Shorten max_length {max_length} -> {max_length // 2}: activation memory grows "
            "with sequence length (check how many examples would be truncated)."
        )
    elif max_length is None:
        advice.append("Shorten max_length: activation memory grows with sequence length.")
    if on_gpu and not (optimizer or "").startswith("paged_"):
        advice.append(
            "Use a paged optimizer (optimizer: paged_adamw_8bit): optimizer state can move to "
            "host memory when the GPU runs short instead of failing with out-of-memory."
        )
    return tuple(advice)
