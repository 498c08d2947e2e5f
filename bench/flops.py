"""Model FLOPs per step and MFU.

Training FLOPs of a LoRA / QLoRA step, per real token of a sequence of n tokens:

- forward through the frozen base: 2 N (N = weights in matrix multiplies, `matmul_parameters`);
- backward: the gradient with respect to the activations, another 2 N. The frozen weights get
  no gradient, so the 2 N of a full fine-tune's weight gradients is skipped: 4 N in all,
  against the usual 6 N (the adapters' own FLOPs, r / hidden of that, are left out);
- attention scores and values: 4 x layers x width x n per token forward over the whole
  context, halved for causal masking (each token sees n / 2 tokens on average), tripled for
  forward + backward: 6 x layers x width x n per token.

Recomputation under gradient checkpointing is not counted (that would be hardware FLOPs,
not model FLOPs), and padding tokens count for nothing: MFU is useful work over peak.
"""

from __future__ import annotations

from typing import Any

from bench.shapes import attention_width, matmul_parameters

# Dense bf16 tensor-core peaks in TFLOP/s from the vendors' datasheets (no sparsity), keyed
# by a model name as torch.cuda.get_device_name() spells it. The longest name that appears in
# the device name as whole words wins ("H200 NVL" over "H200", "L40" never as "L4"); override
# with --peak-tflops.
BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("GH200", 989.0),
    ("H200", 989.0),  # SXM
    ("H200 NVL", 835.0),
    ("H100", 989.0),  # SXM (HBM3)
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H800", 989.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("RTX 4090", 165.0),
    ("RTX 3090", 71.0),
)


def stated_peak_tflops(device_name: str) -> float | None:
    import re

    matches = [
        (len(key), peak)
        for key, peak in BF16_PEAK_TFLOPS
        if re.search(rf"(?<![\w-]){re.escape(key)}(?![\w])", device_name)
    ]
    return max(matches)[1] if matches else None


def step_flops(shape: dict[str, Any], lengths: list[int], frozen_base: bool = True) -> float:
    """Model FLOPs of one training step over sequences of these lengths (real tokens)."""
    dense = (4 if frozen_base else 6) * matmul_parameters(shape)
    attention = 6 * shape["num_hidden_layers"] * attention_width(shape)
    return float(sum(dense * n + attention * n * n for n in lengths))


def mfu(flops: float, seconds: float, peak_tflops: float | None) -> float | None:
    if not peak_tflops or seconds <= 0:
        return None
    return flops / seconds / (peak_tflops * 1e12)
