"""Before the model loads: will the run fit in the memory that is free right now?"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from studio.config import RunConfig


def warn_if_it_will_not_fit(
    config: RunConfig, model_folder: str, device: str, log: Callable[..., None]
) -> None:
    """Log the run's memory estimate and, when it does not fit, the changes that would.

    Only a warning: the estimate is approximate, and the user may know better.
    """
    from studio.methods.memory import estimate_run
    from studio.telemetry import TelemetrySampler, check_fit

    try:
        estimate = estimate_run(config, model_folder, device=device)
    except (OSError, ValueError, KeyError, TypeError) as error:
        log(f"memory estimate not available: {error}", "warning")
        return
    log(f"memory estimate: {estimate.summary()}")
    sampler = TelemetrySampler()
    try:
        snapshot = sampler.sample_once()
    finally:
        sampler.close()
    training = config.training
    from studio.engine.devices import nvml_index_for

    # The GPU this process trains on (the chosen one), not whichever NVML lists first.
    device_index = nvml_index_for(int(os.environ.get("LOCAL_RANK", "0")))
    advice = check_fit(
        estimate.total,
        snapshot,
        device_index,
        method=config.method.name,
        batch_size=training.batch_size,
        gradient_accumulation=training.gradient_accumulation,
        max_length=config.data.max_length,
        gradient_checkpointing=training.gradient_checkpointing,
        optimizer=training.optimizer,
    )
    if advice is not None:
        log(advice.message, "warning")
        for suggestion in advice.suggestions:
            log(f"  try: {suggestion}", "warning")
