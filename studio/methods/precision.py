"""Float32 master weights for the methods that train the base model's own weights.

On a GPU the base model loads in bf16 (or fp16). LoRA and the other adapters keep their own
weights in float32, but full and freeze fine-tunes would train the loaded half-precision
tensors directly, and autocast is no master copy: an AdamW update smaller than half of bf16's
spacing (1/256 of the weight) rounds away, and torch's GradScaler refuses fp16 gradients
("Attempting to unscale FP16 gradients"). So the trained weights are upcast to float32 before
training; frozen weights stay as loaded, and autocast runs the matmuls in half precision.
"""

from __future__ import annotations

from typing import Any


def upcast_trainable_to_float32(model: Any) -> int:
    """Upcast every trainable bf16 / fp16 parameter to float32 in place; how many elements."""
    import torch

    upcast = 0
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype in (torch.bfloat16, torch.float16):
            parameter.data = parameter.data.float()
            upcast += parameter.numel()
    return upcast
