"""The arms of a benchmark, each run in a process of its own (`bench.worker`).

- `transformers`: transformers Trainer + peft, library defaults (SDPA, adamw_torch_fused),
  padded batches from `DataCollatorForLanguageModeling`; gradient checkpointing exactly when
  the workload's `checkpointing` asks for it, as in the ftstudio arm (peft's
  `prepare_model_for_kbit_training` would turn it on for QLoRA by itself: an unequal row);
- `trl`: trl's SFTTrainer with a `peft_config`, library defaults (gradient checkpointing on,
  padded batches, its token-accuracy and entropy metrics);
- `ftstudio`: a real ftstudio run (`TrainingSession`) of the same workload, fast path as the
  config leaves it by default.

Baselines use the same precision as ftstudio (bf16 on a GPU that has it, fp32 on CPU; trl's
default would be bf16 even on CPU), the same LoRA (rank r, alpha 2r, no dropout, all linear
layers), learning rate, schedule (linear, no warm-up), seed and data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.timing import StepTimer
from bench.workload import Workload

ARMS = ("transformers", "trl", "ftstudio")
BASELINES = ("transformers", "trl")


def _precision() -> tuple[Any, bool]:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16, True
    return torch.float32, False


def _lora_config(workload: Workload) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=workload.rank,
        lora_alpha=2 * workload.rank,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def _load_base(model_dir: Path, workload: Workload) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    dtype, _ = _precision()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if workload.method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["device_map"] = {"": 0} if torch.cuda.is_available() else {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    if workload.method != "qlora" and torch.cuda.is_available():
        model.to("cuda")
    return model, tokenizer


def _common_arguments(workload: Workload, output_dir: Path) -> dict[str, Any]:
    _, bf16 = _precision()
    return {
        "output_dir": str(output_dir),
        "max_steps": workload.total_steps,
        "per_device_train_batch_size": workload.batch,
        "learning_rate": workload.learning_rate,
        "lr_scheduler_type": "linear",
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
        "seed": workload.seed,
        "bf16": bf16,
    }


def run_transformers(
    workload: Workload, model_dir: Path, ids: list[list[int]], workdir: Path, timer: StepTimer
) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    model, tokenizer = _load_base(model_dir, workload)
    model = prepare_baseline_model(model, workload)
    arguments = _common_arguments(workload, workdir / "transformers")
    trainer = Trainer(
        model=model,
        args=TrainingArguments(**arguments, gradient_checkpointing=workload.checkpointing),
        train_dataset=Dataset.from_dict({"input_ids": ids}),
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
    )
    timer.attach(trainer)
    trainer.train()
    return {"settings": _settings(trainer)}


def prepare_baseline_model(model: Any, workload: Workload) -> Any:
    """peft's preparation and LoRA, with gradient checkpointing only where the workload asks
    for it (peft's default for 4-bit models is on; the ftstudio arm follows the workload)."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    if workload.method == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=workload.checkpointing
        )
    return get_peft_model(model, _lora_config(workload))


def run_trl(
    workload: Workload, model_dir: Path, ids: list[list[int]], workdir: Path, timer: StepTimer
) -> dict[str, Any]:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = _load_base(model_dir, workload)
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**_common_arguments(workload, workdir / "trl"), max_length=workload.seq),
        train_dataset=Dataset.from_dict({"input_ids": ids}),
        processing_class=tokenizer,
        peft_config=_lora_config(workload),
    )
    timer.attach(trainer)
    trainer.train()
    return {"settings": _settings(trainer)}


def _settings(trainer: Any) -> dict[str, Any]:
    config = getattr(trainer.model, "config", None)
    return {
        "optim": str(getattr(trainer.args.optim, "value", trainer.args.optim)),
        "attention": getattr(config, "_attn_implementation", None),
        "bf16": bool(trainer.args.bf16),
        "torch_compile": bool(trainer.args.torch_compile),
        "use_liger_kernel": bool(getattr(trainer.args, "use_liger_kernel", False)),
        "gradient_checkpointing": bool(getattr(trainer.model, "is_gradient_checkpointing", False)),
    }


def ftstudio_config(workload: Workload, model_dir: Path, data_path: Path, workdir: Path) -> Any:
    from studio.config import config_from_dict

    return config_from_dict(
        {
            "model": {"source": str(model_dir)},
            "method": {
                "name": workload.method,
                "rank": workload.rank,
                "alpha": 2 * workload.rank,
                "dropout": 0.0,
                "target_modules": "all-linear",
            },
            "training_type": "pretrain",
            "data": {"path": str(data_path), "max_length": workload.seq, "deduplicate": False},
            "training": {
                "max_steps": workload.total_steps,
                "batch_size": workload.batch,
                "learning_rate": workload.learning_rate,
                "scheduler": "linear",
                "warmup_ratio": 0.0,
                "logging_steps": 1,
                "seed": workload.seed,
                "gradient_checkpointing": workload.checkpointing,
            },
            "output": {"runs_dir": str(workdir / "runs")},
        },
        [*workload.switches],
    )


def run_ftstudio(
    workload: Workload, model_dir: Path, data_path: Path, workdir: Path, timer: StepTimer
) -> dict[str, Any]:
    config = ftstudio_config(workload, model_dir, data_path, workdir)
    result, lines, errors = run_with_trainer_hook(
        config, timer.attach, base_dir=workdir, telemetry_interval=None
    )
    if result.state.value != "finished":
        raise RuntimeError("; ".join(errors) or f"ftstudio run ended {result.state.value}")
    switches = [line.removeprefix("fast path: ") for line in lines if "fast path: " in line]
    return {"settings": {"fast_path": switches}}


def run_with_trainer_hook(
    config: Any, hook: Any, *, base_dir: Path, telemetry_interval: float | None
) -> tuple[Any, list[str], list[str]]:
    """(RunFinished, log lines, errors) of an in-process ftstudio run whose Trainer gets
    `hook(trainer)` once built: the benchmarks' own callbacks, in this process only."""
    import studio.engine.training as training
    from studio.engine import EventBus
    from studio.engine.events import LogLine, RunError
    from studio.engine.session import TrainingSession

    attach = training.attach_run_callbacks

    def attach_with_hook(trainer: Any, session: Any) -> None:
        attach(trainer, session)
        hook(trainer)

    training.attach_run_callbacks = attach_with_hook
    lines: list[str] = []
    errors: list[str] = []

    def listen(event: Any) -> None:
        if isinstance(event, LogLine):
            lines.append(event.text)
        elif isinstance(event, RunError):
            errors.append(f"{event.kind}: {event.message}")

    bus = EventBus()
    bus.subscribe(listen)
    try:
        session = TrainingSession(
            config, bus, base_dir=base_dir, telemetry_interval=telemetry_interval
        )
        return session.run(), lines, errors
    finally:
        training.attach_run_callbacks = attach
