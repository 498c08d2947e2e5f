"""The body of a training session: data check, model, method, transformers Trainer, save.

Imported only when a run starts (it imports torch and transformers).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.engine.callbacks import EngineCallback
from studio.engine.encoding import PaddingCollator, encode_records
from studio.errors import ConfigError

if TYPE_CHECKING:
    from studio.engine.session import TrainingSession


def quiet_libraries() -> None:
    """Keep the libraries' own progress bars and chatter off the user's terminal."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass


def train(session: TrainingSession) -> EngineCallback:
    config = session.config
    run = session.run_dir
    assert run is not None

    # 1. The data is checked before any model is loaded: a bad file fails in seconds.
    from studio.data import load_training_data

    data = load_training_data(
        config.data, config.training_type, seed=config.training.seed, base_dir=session.base_dir
    )
    run.write_json("data_report.json", data.report.to_dict())
    session.log(data.report.summary())
    if config.training_type in ("dpo", "orpo"):
        raise ConfigError(
            f"training_type '{config.training_type}' is not available in this build yet",
            advice="use training_type: sft",
        )

    quiet_libraries()
    from studio.methods.registry import MethodContext, describe_trainable, get_method, save_trained
    from studio.models.loading import load_base_model, load_tokenizer, plan_device
    from studio.models.sources import resolve_model_source

    # 2. Model and method.
    plan = plan_device(config.model, config.training.precision)
    source = resolve_model_source(config.model.source)
    session.log(f"loading {source.name} ({source.kind}) on {plan.device} as {plan.dtype_name}")
    tokenizer = load_tokenizer(config.model, source)
    method = get_method(config.method.name)
    implementation = method.implementation()
    quantization = None
    if hasattr(implementation, "quantization_config"):
        quantization = implementation.quantization_config(config.method, plan)
    model = load_base_model(config.model, plan, quantization_config=quantization, source=source)
    context = MethodContext(
        tokenizer=tokenizer,
        plan=plan,
        training_type=config.training_type,
        gradient_checkpointing=config.training.gradient_checkpointing,
    )
    model = implementation.apply(model, config.method, context)
    session.model, session.tokenizer = model, tokenizer
    session.log(f"method {method.title}: {describe_trainable(model)}")

    # 3. Tokenize.
    train_features, stats = encode_records(
        tokenizer,
        data.train,
        data.kind,
        config.data.max_length,
        assistant_only=config.training.assistant_only_loss,
    )
    session.log(f"train set: {stats.summary()}")
    if not train_features:
        raise ConfigError(
            "no training example is left after tokenization",
            advice=f"raise data.max_length (now {config.data.max_length})",
        )
    eval_features = None
    if data.eval:
        eval_features, eval_stats = encode_records(
            tokenizer,
            data.eval,
            data.kind,
            config.data.max_length,
            assistant_only=config.training.assistant_only_loss,
        )
        session.log(f"eval set: {eval_stats.summary()}")
        eval_features = eval_features or None

    # 4. Train.
    from transformers import PrinterCallback, Trainer

    collator = PaddingCollator(tokenizer.pad_token_id)
    args = training_arguments(
        config, run.checkpoints_dir, plan, len(train_features), bool(eval_features)
    )
    callback = EngineCallback(session.publish, session.control, lambda: collator.tokens_seen)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_features,
        eval_dataset=eval_features,
        data_collator=collator,
        callbacks=[callback],
    )
    # Our own events replace the Trainer's printed log dicts.
    trainer.remove_callback(PrinterCallback)
    trainer.train()

    # 5. Save the result atomically: a crash mid-save leaves no half-written adapter behind.
    staging = run.path / ".adapter.saving"
    shutil.rmtree(staging, ignore_errors=True)
    save_trained(model, config.method, staging)
    tokenizer.save_pretrained(str(staging))
    if run.adapter_dir.exists():
        shutil.rmtree(run.adapter_dir)
    staging.rename(run.adapter_dir)
    session.log(f"saved {method.title} result to {run.adapter_dir}")
    return callback


def total_steps(config: Any, examples: int) -> int:
    training = config.training
    if training.max_steps:
        return training.max_steps
    per_epoch = math.ceil(examples / (training.batch_size * training.gradient_accumulation))
    return max(math.ceil(per_epoch * training.epochs), 1)


def training_arguments(
    config: Any, output_dir: Path, plan: Any, examples: int, has_eval: bool
) -> Any:
    from transformers import TrainingArguments

    training = config.training
    steps = total_steps(config, examples)
    eval_steps = training.eval_steps or max(steps // 4, 1)
    warmup: float | int = training.warmup_steps or training.warmup_ratio
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=training.epochs,
        max_steps=training.max_steps or -1,
        learning_rate=training.learning_rate,
        lr_scheduler_type=training.scheduler,
        warmup_steps=warmup,
        per_device_train_batch_size=training.batch_size,
        per_device_eval_batch_size=training.batch_size,
        gradient_accumulation_steps=training.gradient_accumulation,
        weight_decay=training.weight_decay,
        max_grad_norm=training.max_grad_norm,
        optim=training.optimizer,
        bf16=plan.bf16,
        fp16=plan.fp16,
        gradient_checkpointing=training.gradient_checkpointing,
        seed=training.seed,
        data_seed=training.seed,
        logging_steps=training.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps if has_eval else None,
        save_strategy="steps" if training.save_steps else "no",
        save_steps=training.save_steps or 500,
        save_total_limit=training.save_total_limit,
        report_to=[] if config.report_to == "none" else [config.report_to],
        disable_tqdm=True,
        use_cpu=plan.device == "cpu",
        dataloader_pin_memory=plan.device == "cuda",
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )
