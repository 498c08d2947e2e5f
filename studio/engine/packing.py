"""Sequence packing without cross-contamination between the packed examples.

Tokenized examples are packed best-fit-decreasing into rows of at most `max_length` tokens,
and each batch of rows goes to the model as one padding-free sequence: the examples laid end
to end, `position_ids` restarting at 0 for every example, no attention mask. transformers
(5.x) turns restarting position ids into a block-diagonal causal mask for eager, SDPA and
flex attention, and into variable-length kernels for FlashAttention, so no token attends to
another example. Two conditions are easy to miss and both are enforced here:

- the label at the start of every example is ignored, so no example's first token is
  "predicted" from the end of the example before it;
- the model must not build a KV cache in the forward pass (`use_cache=False`): with a cache
  transformers skips the packed-sequence detection and silently attends across examples.

Because a model's own code decides whether that holds, `check_isolation` runs one small
forward before training and refuses to pack when packed and separate forwards disagree.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from studio.engine.encoding import IGNORE_INDEX
from studio.errors import ConfigError

# Methods that put virtual tokens or key/value prefixes in front of the input: a packed row
# would get one prefix for all its examples.
VIRTUAL_TOKEN_METHODS = frozenset({"prompt_tuning", "p_tuning", "prefix_tuning"})


@dataclass
class PackingStats:
    examples: int = 0
    rows: int = 0
    tokens: int = 0
    capacity: int = 0

    @property
    def fill(self) -> float:
        return self.tokens / self.capacity if self.capacity else 0.0

    def summary(self) -> str:
        return (
            f"packed {self.examples} examples into {self.rows} sequences "
            f"({100 * self.fill:.0f}% full, no attention across examples)"
        )


def pack_features(
    features: list[dict[str, list[int]]], max_length: int
) -> tuple[list[dict[str, list[int]]], PackingStats]:
    """Pack examples best-fit-decreasing into rows of at most max_length tokens.

    Each row holds `input_ids`, `labels` (ignored at every example's first token) and
    `position_ids` (restarting at 0 for every example).
    """
    order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (free tokens, bin index), sorted
    for index in order:
        length = len(features[index]["input_ids"])
        slot = bisect.bisect_left(free, (length, -1))
        if slot < len(free):
            space, chosen = free.pop(slot)
            bins[chosen].append(index)
            bisect.insort(free, (space - length, chosen))
        else:
            bins.append([index])
            bisect.insort(free, (max_length - length, len(bins) - 1))
    rows = [_join([features[i] for i in members]) for members in bins]
    tokens = sum(len(row["input_ids"]) for row in rows)
    stats = PackingStats(len(features), len(rows), tokens, len(rows) * max_length)
    return rows, stats


def _join(examples: list[dict[str, list[int]]]) -> dict[str, list[int]]:
    input_ids: list[int] = []
    labels: list[int] = []
    position_ids: list[int] = []
    for example in examples:
        ids = example["input_ids"]
        input_ids += ids
        labels += [IGNORE_INDEX, *example["labels"][1:]]
        position_ids += range(len(ids))
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}


class PackedCollator:
    """Lays a batch of packed rows end to end as one padding-free sequence."""

    def __init__(self) -> None:
        self.tokens_seen = 0

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        input_ids: list[int] = []
        labels: list[int] = []
        position_ids: list[int] = []
        for row in batch:
            input_ids += row["input_ids"]
            labels += [IGNORE_INDEX, *row["labels"][1:]]
            # Rows of an encoded dataset bring no positions: each starts at 0.
            position_ids += row.get("position_ids") or range(len(row["input_ids"]))
        self.tokens_seen += len(input_ids)
        return {
            "input_ids": torch.tensor([input_ids], dtype=torch.long),
            "labels": torch.tensor([labels], dtype=torch.long),
            "position_ids": torch.tensor([position_ids], dtype=torch.long),
            # A KV cache turns off transformers' packed-sequence masking (see module doc).
            "use_cache": False,
        }


def refuse_unsupported_method(method_name: str) -> None:
    if method_name in VIRTUAL_TOKEN_METHODS:
        raise ConfigError(
            f"training.packing cannot be used with {method_name}: its virtual tokens would be "
            "shared by every example packed into a sequence",
            advice="set training.packing: false",
        )


def check_isolation(model: Any, features: list[dict[str, list[int]]]) -> float:
    """Refuse to pack unless a packed forward equals separate forwards; the largest gap.

    Two examples are run packed into one sequence and each on its own; if the second one's
    logits differ, examples would see each other during training.
    """
    import torch

    examples = [
        {"input_ids": f["input_ids"][:16], "labels": f["labels"][:16]}
        for f in features
        if len(f["input_ids"]) >= 2
    ][:2]
    if len(examples) < 2:
        return 0.0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _autocast_like_training(model, device):
            packed_row, _ = pack_features(examples, sum(len(e["input_ids"]) for e in examples))
            # pack_features sorts longest first: find where each example sits in the row.
            batch = PackedCollator()(packed_row)
            batch.pop("labels")
            packed = model(**{k: _to(v, device) for k, v in batch.items()}).logits[0].float()
            gap = 0.0
            offset = 0
            for example in _row_order(examples):
                length = len(example["input_ids"])
                ids = torch.tensor([example["input_ids"]], device=device)
                alone = model(input_ids=ids, use_cache=False).logits[0].float()
                part = packed[offset : offset + length]
                scale = alone.abs().max().item() or 1.0
                gap = max(gap, (part - alone).abs().max().item() / scale)
                offset += length
    finally:
        model.train(was_training)
    tolerance = isolation_tolerance(model)
    if gap > tolerance:
        implementation = getattr(getattr(model, "config", None), "_attn_implementation", "?")
        raise ConfigError(
            "training.packing would let packed examples attend to each other with this model "
            f"and attention implementation '{implementation}' (packed and separate forwards "
            f"differ by {gap:.3g} of the logit scale)",
            advice="set training.packing: false, or model.attn_implementation to sdpa or "
            "flash_attention_2",
        )
    return gap


def _autocast_like_training(model: Any, device: Any) -> Any:
    """The autocast training will run under: full and freeze fine-tunes mix float32 trained
    weights with half-precision frozen ones, which only autocast multiplies together."""
    import contextlib

    import torch

    half = {torch.bfloat16, torch.float16}
    dtype = next((p.dtype for p in model.parameters() if p.dtype in half), None)
    if dtype is None or not hasattr(device, "type"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def isolation_tolerance(model: Any) -> float:
    """The largest gap (of the logit scale) that rounding alone explains.

    Strict only when every weight computes in float32. One bf16 / fp16 weight, or a quantized
    one (QLoRA's 4-bit weights are uint8 and multiply in the compute dtype, next to an
    embedding and norms upcast to float32), means half-precision matmuls and their noise.
    """
    import torch

    for parameter in model.parameters():
        if parameter.dtype != torch.float32:
            return 3e-2
    return 1e-3


def _row_order(examples: list[dict[str, list[int]]]) -> list[dict[str, list[int]]]:
    return sorted(examples, key=lambda e: -len(e["input_ids"]))


def _to(value: Any, device: Any) -> Any:
    return value.to(device) if hasattr(value, "to") else value
