"""Per-step timing of a transformers Trainer, the same for every arm.

`StepTimer` wraps the Trainer's data collator to record each batch's real tokens (padding
excluded) and sequence lengths, and stamps the end of every optimizer step after waiting
for the GPU, so a step's time is its whole work. Batch k is the k-th collated batch (no
gradient accumulation in the benchmarks, no dataloader workers).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from transformers import TrainerCallback


def batch_lengths(batch: dict[str, Any]) -> list[int]:
    """The real length of every sequence in a collated batch, padded or padding-free."""
    mask = batch.get("attention_mask")
    if mask is not None:
        return [int(n) for n in mask.sum(dim=-1).tolist()]
    positions = batch.get("position_ids")
    ids = batch["input_ids"]
    if positions is None:
        return [int(ids.shape[-1])] * int(ids.shape[0])
    lengths: list[int] = []
    for row in positions.tolist():
        starts = [i for i, p in enumerate(row) if p == 0] + [len(row)]
        lengths += [b - a for a, b in itertools.pairwise(starts) if b > a]
    return lengths


class StepTimer(TrainerCallback):
    def __init__(self, started: float) -> None:
        self.started = started  # the process's start, for time to first step
        self.batches: list[list[int]] = []  # sequence lengths of each collated batch
        self.shapes: list[int] = []  # token positions each batch computes, padding included
        self.step_ends: list[float] = []
        self.train_begin: float | None = None
        self.losses: dict[int, float] = {}
        self.checkpointing: bool | None = None

    def attach(self, trainer: Any) -> None:
        collate = trainer.data_collator

        def recording(features: Any) -> Any:
            batch = collate(features)
            self.batches.append(batch_lengths(batch))
            self.shapes.append(int(batch["input_ids"].numel()))
            return batch

        trainer.data_collator = recording
        trainer.add_callback(self)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.train_begin = time.perf_counter()
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
            if hasattr(type(base), name):
                self.checkpointing = bool(getattr(base, name))
                break

    def on_step_end(self, args, state, control, **kwargs):
        _synchronize()
        self.step_ends.append(time.perf_counter())

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses[state.global_step] = float(logs["loss"])

    def summary(self, warmup: int) -> dict[str, Any]:
        """Timed steps are those after `warmup`: their seconds, tokens and lengths."""
        steps = len(self.step_ends)
        if steps <= warmup:
            raise RuntimeError(f"only {steps} steps ran; {warmup} warm-up steps were asked for")
        seconds = (
            self.step_ends[-1] - self.step_ends[warmup - 1]
            if warmup
            else (self.step_ends[-1] - (self.train_begin or self.started))
        )
        timed = self.batches[warmup:steps]
        lengths = [n for batch in timed for n in batch]
        losses = [self.losses[s] for s in sorted(self.losses) if s > warmup]
        return {
            "timed_steps": steps - warmup,
            "seconds": seconds,
            "tokens": sum(lengths),
            "padded_tokens": sum(self.shapes[warmup:steps]),
            "lengths": lengths,
            "time_to_first_step_s": self.step_ends[0] - self.started,
            "first_step_loss": self.losses.get(1),
            "mean_loss": sum(losses) / len(losses) if losses else None,
            "last_loss": losses[-1] if losses else None,
        }


def _synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
