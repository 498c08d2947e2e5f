"""SFT and continued pre-training: token ids and labels through the transformers Trainer.

Conversations are rendered with the chat template and trained on the assistant's tokens only
(unless `training.assistant_only_loss` is off); raw text is trained on every token. With
`training.packing`, examples are packed padding-free without attention across examples
(see `packing.py`). Without packing, the fast path's padding-free batches lay each batch's
examples end to end the same way, so no compute goes to padding tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from studio.engine.arguments import training_arguments
from studio.engine.encoding import EncodingStats, PaddingCollator
from studio.engine.evaluation import evaluation_callbacks
from studio.errors import ConfigError

if TYPE_CHECKING:
    from studio.engine.training import TrainingJob


def build_trainer(job: TrainingJob) -> Any:
    from transformers import Trainer

    config, session = job.config, job.session
    max_length = config.data.max_length
    from studio.engine.data_preparation import encoded_for_training

    # Arrow-backed datasets (memory-mapped from the encoded-data cache), not Python lists.
    encoded = encoded_for_training(job)
    _log_encoding(session, "train set", encoded.train_stats)
    train_features: Any = encoded.train
    if len(train_features) == 0:
        raise ConfigError(
            "no training example is left after tokenization",
            advice=f"raise data.max_length (now {max_length})",
        )
    eval_features: Any = None
    if encoded.eval_stats is not None:
        _log_encoding(session, "eval set", encoded.eval_stats)
        eval_features = encoded.eval if encoded.eval is not None and len(encoded.eval) else None

    collator: Any
    if config.training.packing:
        from studio.engine.packing import (
            PackedCollator,
            check_isolation,
            pack_features,
            refuse_unsupported_method,
        )

        refuse_unsupported_method(config.method.name)
        check_isolation(job.model, first_rows(train_features))
        train_features, packing = pack_features(train_features.to_list(), max_length)
        session.log(f"train set: {packing.summary()}")
        if eval_features:
            eval_features, _ = pack_features(eval_features.to_list(), max_length)
        collator = PackedCollator()
    elif _padding_free(job, first_rows(train_features)):
        from studio.engine.packing import PackedCollator

        # PackedCollator numbers the positions of rows that bring none.
        collator = PackedCollator()
    else:
        collator = PaddingCollator(job.tokenizer.pad_token_id)
    # Keeps an uncached encoding's folder (a hub dataset) for as long as the trainer lives.
    collator.encoded_data = encoded

    has_eval = bool(eval_features)
    callbacks = [job.callback_factory(lambda: collator.tokens_seen)]
    callbacks += evaluation_callbacks(job, has_eval)
    assert session.run_dir is not None
    args = training_arguments(
        config,
        session.run_dir.checkpoints_dir,
        job.plan,
        len(train_features),
        has_eval,
        job.fast_path,
    )
    return Trainer(
        model=job.model,
        args=args,
        train_dataset=train_features,
        eval_dataset=eval_features,
        data_collator=collator,
        callbacks=callbacks,
    )


def _log_encoding(session: Any, name: str, stats: EncodingStats) -> None:
    # Truncation loses answers: say so loudly rather than in passing.
    level = "warning" if stats.truncated or stats.dropped_no_target else "info"
    session.log(f"{name}: {stats.summary()}", level)


def first_rows(dataset: Any, count: int = 8) -> list[dict[str, list[int]]]:
    """The first examples of an Arrow-backed dataset as plain rows."""
    return dataset.select(range(min(count, len(dataset)))).to_list()


def padding_free_rows(features: list[dict[str, list[int]]]) -> list[dict[str, list[int]]]:
    """Each example as a row of its own with position ids, for `PackedCollator`."""
    return [
        {**feature, "position_ids": list(range(len(feature["input_ids"])))} for feature in features
    ]


def _padding_free(job: TrainingJob, features: list[dict[str, list[int]]]) -> bool:
    """Whether the fast path batches padding-free, after checking that the model keeps the
    examples of a batch apart; when it does not, the run goes on with padded batches."""
    from studio.engine.packing import check_isolation

    choice = getattr(job.fast_path, "padding_free", None)
    if choice is None or not choice.enabled or choice.value != "batch":
        return False
    try:
        check_isolation(job.model, features)
    except ConfigError as error:
        job.session.log(
            f"fast path: padding-free batches off after all ({error.message}); batches are padded",
            "warning",
        )
        return False
    return True
