"""Loading a model the way a method trains it, for the tests that compare against the
estimate or the applied method."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_for_method(folder: Path, settings: Any) -> tuple[Any, Any]:
    """(model, the method's implementation): QLoRA loads 4-bit on the CPU, the rest as saved."""
    from transformers import AutoModelForCausalLM

    from studio.methods.registry import get_method
    from studio.models.loading import DevicePlan

    implementation = get_method(settings.name).implementation()
    kwargs: dict[str, Any] = {}
    if settings.name == "qlora":
        plan = DevicePlan("cpu", "float32", bf16=False, fp16=False)
        kwargs = {
            "quantization_config": implementation.quantization_config(settings, plan),
            "device_map": {"": "cpu"},
        }
    return AutoModelForCausalLM.from_pretrained(folder, **kwargs), implementation
