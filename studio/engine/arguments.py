"""TrainingArguments from the run config, shared by every training type."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from studio.config import RunConfig
    from studio.engine.fast_path import FastPath
    from studio.models.loading import DevicePlan


def total_steps(config: RunConfig, examples: int) -> int:
    training = config.training
    if training.max_steps:
        return training.max_steps
    per_epoch = math.ceil(examples / (training.batch_size * training.gradient_accumulation))
    return max(math.ceil(per_epoch * training.epochs), 1)


# With no save_steps set, a checkpoint about every fifth of the run: a crash, an out-of-memory
# error or a killed process then costs at most that much, and resume has somewhere to start.
AUTO_SAVE_PARTS = 5
AUTO_SAVE_MIN_STEPS, AUTO_SAVE_MAX_STEPS = 25, 1000
AUTO_SAVE_SHORTEST_RUN = 50  # shorter runs save at the end (and on stop) only


def auto_save_steps(steps: int) -> int | None:
    """Steps between periodic checkpoints when the config leaves it open (None: none)."""
    if steps < AUTO_SAVE_SHORTEST_RUN:
        return None
    return min(max(steps // AUTO_SAVE_PARTS, AUTO_SAVE_MIN_STEPS), AUTO_SAVE_MAX_STEPS)


def argument_values(
    config: RunConfig,
    output_dir: Path,
    plan: DevicePlan,
    examples: int,
    has_eval: bool,
    fast_path: FastPath | None = None,
) -> dict[str, Any]:
    """Keyword arguments for TrainingArguments (or a trl config, which extends it).

    `fast_path` (a `studio.engine.fast_path.FastPath`) sets the speed switches: Liger kernels,
    fused AdamW, gradient checkpointing and its offloading, torch.compile.
    """
    training = config.training
    steps = total_steps(config, examples)
    eval_steps = training.eval_steps or max(steps // 4, 1)
    save_steps = training.save_steps or auto_save_steps(steps)
    warmup: float | int = training.warmup_steps or training.warmup_ratio
    values = {
        "output_dir": str(output_dir),
        "num_train_epochs": training.epochs,
        "max_steps": training.max_steps or -1,
        "learning_rate": training.learning_rate,
        "lr_scheduler_type": training.scheduler,
        "warmup_steps": warmup,
        "per_device_train_batch_size": training.batch_size,
        "per_device_eval_batch_size": training.batch_size,
        "gradient_accumulation_steps": training.gradient_accumulation,
        "weight_decay": training.weight_decay,
        "max_grad_norm": training.max_grad_norm,
        "optim": training.optimizer,
        "bf16": plan.bf16,
        "fp16": plan.fp16,
        _checkpointing_argument(): training.gradient_checkpointing,
        "seed": training.seed,
        "data_seed": training.seed,
        "logging_steps": training.logging_steps,
        "logging_first_step": True,
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": eval_steps if has_eval else None,
        # The Trainer tracks the best eval loss and keeps its checkpoint out of rotation.
        "metric_for_best_model": "eval_loss" if has_eval else None,
        "greater_is_better": False if has_eval else None,
        "save_strategy": "steps" if save_steps else "no",
        "save_steps": save_steps or 500,
        "save_total_limit": training.save_total_limit,
        "report_to": [] if config.report_to == "none" else [config.report_to],
        "disable_tqdm": True,
        "use_cpu": plan.device == "cpu",
        "dataloader_pin_memory": plan.device == "cuda",
        "dataloader_num_workers": 0,
        "remove_unused_columns": False,
    }
    if fast_path is not None:
        values.update(fast_path.argument_values(_checkpointing_argument()))
    from studio.engine.distributed import group_argument_values

    values.update(group_argument_values(config, plan))  # {} outside a torchrun group
    return values


def _checkpointing_argument() -> str:
    """transformers 5.x renamed gradient_checkpointing (now a deprecated alias)."""
    from transformers import TrainingArguments

    if "activation_checkpointing" in TrainingArguments.__dataclass_fields__:
        return "activation_checkpointing"
    return "gradient_checkpointing"


def training_arguments(
    config: RunConfig,
    output_dir: Path,
    plan: DevicePlan,
    examples: int,
    has_eval: bool,
    fast_path: FastPath | None = None,
) -> Any:
    from transformers import TrainingArguments

    values = argument_values(config, output_dir, plan, examples, has_eval, fast_path)
    return TrainingArguments(**values)
