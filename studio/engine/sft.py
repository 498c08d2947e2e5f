"""SFT and continued pre-training: token ids and labels through the transformers Trainer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from studio.engine.arguments import training_arguments
from studio.engine.encoding import PaddingCollator, encode_records
from studio.errors import ConfigError

if TYPE_CHECKING:
    from studio.engine.training import TrainingJob


def build_trainer(job: TrainingJob) -> Any:
    from transformers import Trainer

    config, session = job.config, job.session
    assistant_only = config.training.assistant_only_loss
    train_features, stats = encode_records(
        job.tokenizer, job.data.train, job.data.kind, config.data.max_length, assistant_only
    )
    session.log(f"train set: {stats.summary()}")
    if not train_features:
        raise ConfigError(
            "no training example is left after tokenization",
            advice=f"raise data.max_length (now {config.data.max_length})",
        )
    eval_features = None
    if job.data.eval:
        eval_features, eval_stats = encode_records(
            job.tokenizer, job.data.eval, job.data.kind, config.data.max_length, assistant_only
        )
        session.log(f"eval set: {eval_stats.summary()}")
        eval_features = eval_features or None

    collator = PaddingCollator(job.tokenizer.pad_token_id)
    assert session.run_dir is not None
    args = training_arguments(
        config, session.run_dir.checkpoints_dir, job.plan, len(train_features), bool(eval_features)
    )
    return Trainer(
        model=job.model,
        args=args,
        train_dataset=train_features,
        eval_dataset=eval_features,
        data_collator=collator,
        callbacks=[job.callback_factory(lambda: collator.tokens_seen)],
    )
