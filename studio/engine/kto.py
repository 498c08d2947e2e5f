"""KTO with trl: learn from single answers labelled good (desirable) or bad (undesirable).

The records are conversational ({"prompt": messages, "completion": [assistant], "label"}), so
trl renders them with the tokenizer's chat template and its KL term compares each answer with
the others in its batch (hence batch_size >= 2, checked by the config). As for DPO, an adapter
method's reference model is the base model with the adapters switched off, and prompts longer
than `preference.max_prompt_length` keep their end; `data.max_length` cuts the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from studio.engine.preference import (
    PairStats,
    prompt_limits,
    require_conversations,
    trl_inputs,
    use_base_as_reference,
)
from studio.errors import ConfigError

if TYPE_CHECKING:
    from studio.engine.session import TrainingSession
    from studio.engine.training import TrainingJob


def build_trainer(job: TrainingJob) -> Any:
    config, session = job.config, job.session
    require_conversations(
        job,
        "kto",
        f"kto needs answers labelled good or bad, got {job.data.kind} data",
        "the answers",
    )
    from trl import KTOConfig, KTOTrainer

    inputs = trl_inputs(job)
    train = inputs.train
    max_prompt_length, max_length = prompt_limits(
        config.preference.max_prompt_length, config.data.max_length
    )
    good = sum(1 for record in job.data.train if record["label"])
    session.log(
        f"KTO: {good} answers labelled good, {len(job.data.train) - good} bad "
        f"(desirable_weight {config.preference.desirable_weight}, undesirable_weight "
        f"{config.preference.undesirable_weight})"
    )
    args = KTOConfig(
        **inputs.values,
        beta=config.preference.beta,
        desirable_weight=config.preference.desirable_weight,
        undesirable_weight=config.preference.undesirable_weight,
        max_length=max_length,
        disable_dropout=True,
    )
    trainer = KTOTrainer(args=args, **inputs.trainer_arguments(job))
    use_base_as_reference(job.model, session, "KTO")
    trainer.train_dataset, stats = cut_prompts(trainer.train_dataset, max_prompt_length, len(train))
    _log(session, "train set", stats)
    if len(trainer.train_dataset) < 2:
        raise ConfigError(
            "fewer than two labelled answers are left after fitting to max_length",
            advice=f"raise data.max_length (now {max_length})",
        )
    if trainer.eval_dataset is not None:
        trainer.eval_dataset, eval_stats = cut_prompts(
            trainer.eval_dataset, max_prompt_length, len(job.data.eval)
        )
        _log(session, "eval set", eval_stats)
    return inputs.count_tokens(trainer)


def cut_prompts(dataset: Any, max_prompt_length: int, given: int) -> tuple[Any, PairStats]:
    """trl's tokenized examples with prompts cut to their last `max_prompt_length` tokens;
    `given` is how many records went in (trl drops those whose prompt fills max_length)."""
    stats = PairStats(pairs=len(dataset), dropped=given - len(dataset))
    prompts = dataset["prompt_ids"]
    stats.prompts_truncated = sum(1 for prompt in prompts if len(prompt) > max_prompt_length)
    if stats.prompts_truncated:
        dataset = dataset.map(
            lambda example: {"prompt_ids": example["prompt_ids"][-max_prompt_length:]}
        )
    return dataset, stats


def _log(session: TrainingSession, name: str, stats: PairStats) -> None:
    text = stats.summary().replace("preference pairs", "labelled answers")
    session.log(f"{name}: {text}", "warning" if stats.lossy else "info")
