"""Preference training with trl: DPO and ORPO on prompt / chosen / rejected pairs.

The records are conversational (message lists), so trl renders them with the tokenizer's chat
template. Neither trainer in trl 1.x limits the prompt length, so that is done here: prompts
longer than `preference.max_prompt_length` keep their end (the question right before the
answer), and answers are then cut to fit `data.max_length`. Everything cut or dropped is
counted and logged.

Everything these trainers log (rewards/chosen, rewards/margins, rewards/accuracies, logps,
log_odds_ratio, nll_loss, ...) flows through the Trainer's logs into `StepMetrics.extra` /
`EvalMetrics.extra` and `metrics.jsonl`.

DPO's reference model: for adapter methods it is the base model with the adapters switched
off; trl 1.x would otherwise add a second, frozen copy of the adapter as the reference, which
costs memory and compute and ends up in every saved checkpoint. For methods that train the
base weights themselves (full, freeze), trl loads a frozen copy of the base model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from studio.engine.arguments import argument_values
from studio.engine.evaluation import evaluation_callbacks
from studio.errors import ConfigError, DataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from studio.engine.session import TrainingSession
    from studio.engine.training import TrainingJob

# ORPO gets no length limit of its own from us: answers are cut here, after the prompt is.
_NO_LIMIT = 1 << 30


@dataclass
class PairStats:
    pairs: int = 0
    prompts_truncated: int = 0
    answers_truncated: int = 0
    dropped: int = 0

    def summary(self) -> str:
        parts = [f"{self.pairs} preference pairs"]
        if self.prompts_truncated:
            parts.append(f"{self.prompts_truncated} prompts cut to max_prompt_length")
        if self.answers_truncated:
            parts.append(f"{self.answers_truncated} answers cut to fit max_length")
        if self.dropped:
            parts.append(f"{self.dropped} dropped: no answer token left within max_length")
        return "; ".join(parts)

    @property
    def lossy(self) -> bool:
        return bool(self.prompts_truncated or self.answers_truncated or self.dropped)


class TokenCounter:
    """Wraps a collator and counts the real (unpadded) tokens it hands out."""

    def __init__(self, collator: Any) -> None:
        self.collator = collator
        self.tokens_seen = 0

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(examples)
        for key in ("attention_mask", "chosen_attention_mask", "rejected_attention_mask"):
            mask = batch.get(key)
            if mask is not None:
                self.tokens_seen += int(mask.sum())
        return batch


def build_trainer(job: TrainingJob) -> Any:
    config, session = job.config, job.session
    require_conversations(
        job,
        "preference",
        f"{config.training_type} needs preference pairs, got {job.data.kind}",
        "preference pairs",
    )
    inputs = trl_inputs(job)
    limits = prompt_limits(config.preference.max_prompt_length, config.data.max_length)
    if limits[0] < config.preference.max_prompt_length:
        session.log(
            f"preference.max_prompt_length ({config.preference.max_prompt_length}) leaves no "
            f"room for answers within data.max_length ({limits[1]}): prompts are cut to "
            f"{limits[0]} tokens",
            "warning",
        )
    if config.training_type == "dpo":
        trainer = _dpo_trainer(job, inputs, limits)
    else:
        trainer = _orpo_trainer(job, inputs, limits)
    return inputs.count_tokens(trainer)


@dataclass
class TrlInputs:
    """What every trl trainer of the preference family is built from."""

    train: Any  # datasets.Dataset
    evaluation: Any  # datasets.Dataset or None
    callbacks: list[Any]
    values: dict[str, Any]  # TrainingArguments values
    counters: list[TokenCounter]  # filled by count_tokens; the step callback reads it

    def trainer_arguments(self, job: TrainingJob) -> dict[str, Any]:
        """The keyword arguments every trl trainer of the family takes besides its `args`."""
        return {
            "model": job.model,
            "train_dataset": self.train,
            "eval_dataset": self.evaluation,
            "processing_class": job.tokenizer,
            "callbacks": self.callbacks,
        }

    def count_tokens(self, trainer: Any) -> Any:
        """Wrap the built trainer's collator so the run counts the tokens it trains on."""
        counter = TokenCounter(trainer.data_collator)
        trainer.data_collator = counter
        self.counters.append(counter)
        return trainer


def require_conversations(job: TrainingJob, kind: str, wrong_kind: str, records: str) -> None:
    """The job's data is of `kind` (else DataError `wrong_kind`), and its tokenizer has the chat
    template trl renders the conversational `records` with."""
    if job.data.kind != kind:
        raise DataError(wrong_kind)
    if not getattr(job.tokenizer, "chat_template", None):
        raise DataError(
            f"the model's tokenizer has no chat template, so {records} cannot be formatted",
            advice="set model.chat_template_preset (for example chatml) or model.chat_template",
        )


def trl_inputs(job: TrainingJob) -> TrlInputs:
    """The datasets, callbacks and arguments a DPO / ORPO / KTO trainer takes."""
    import datasets
    from datasets import Dataset

    config, session = job.config, job.session
    datasets.disable_progress_bars()  # trl maps the datasets; progress goes to the log instead
    # A large file's records come read from disk on demand (a spool): read here, once.
    train = Dataset.from_list(list(job.data.train))
    evaluation = Dataset.from_list(list(job.data.eval)) if job.data.eval else None
    has_eval = evaluation is not None
    counters: list[TokenCounter] = []
    callbacks = [job.callback_factory(lambda: counters[0].tokens_seen if counters else 0)]
    callbacks += evaluation_callbacks(job, has_eval)
    assert session.run_dir is not None
    values = argument_values(
        config, session.run_dir.checkpoints_dir, job.plan, len(train), has_eval, job.fast_path
    )
    return TrlInputs(train, evaluation, callbacks, values, counters)


def prompt_limits(max_prompt_length: int, max_length: int) -> tuple[int, int]:
    """(prompt limit, total limit): a prompt may take at most half of a too-small max_length."""
    if max_prompt_length < max_length:
        return max_prompt_length, max_length
    return max(max_length // 2, 1), max_length


# ---------------------------------------------------------------- DPO


def _dpo_trainer(job: TrainingJob, inputs: TrlInputs, limits: tuple[int, int]) -> Any:
    from trl import DPOConfig, DPOTrainer

    config, session = job.config, job.session
    # max_length=None: trl would drop pairs whose prompt alone fills max_length before the
    # prompt is cut; both limits are applied below instead.
    args = DPOConfig(
        **inputs.values,
        beta=config.preference.beta,
        max_length=None,
        disable_dropout=True,
    )
    trainer = DPOTrainer(args=args, **inputs.trainer_arguments(job))
    use_base_as_reference(job.model, session, "DPO")
    trainer.train_dataset, stats = fit_dpo_lengths(trainer.train_dataset, *limits)
    _log_pairs(session, "train set", stats)
    if len(trainer.train_dataset) == 0:
        raise ConfigError(
            "no preference pair is left after fitting to max_length",
            advice=f"raise data.max_length (now {limits[1]})",
        )
    if trainer.eval_dataset is not None:
        trainer.eval_dataset, eval_stats = fit_dpo_lengths(trainer.eval_dataset, *limits)
        _log_pairs(session, "eval set", eval_stats)
    return trainer


def fit_dpo_lengths(dataset: Any, max_prompt_length: int, max_length: int) -> tuple[Any, PairStats]:
    """Cut trl's tokenized DPO pairs: prompts keep their last tokens, answers their first."""
    from datasets import Dataset

    stats = PairStats()
    columns: dict[str, list[list[int]]] = {"prompt_ids": [], "chosen_ids": [], "rejected_ids": []}
    for prompt, chosen, rejected in zip(
        dataset["prompt_ids"], dataset["chosen_ids"], dataset["rejected_ids"], strict=True
    ):
        if len(prompt) > max_prompt_length:
            stats.prompts_truncated += 1
            prompt = prompt[-max_prompt_length:]
        room = max_length - len(prompt)
        if len(chosen) > room or len(rejected) > room:
            stats.answers_truncated += 1
        if not chosen[:room] or not rejected[:room]:
            stats.dropped += 1
            continue
        columns["prompt_ids"].append(prompt)
        columns["chosen_ids"].append(chosen[:room])
        columns["rejected_ids"].append(rejected[:room])
    stats.pairs = len(columns["prompt_ids"])
    return Dataset.from_dict(columns), stats


# ---------------------------------------------------------------- ORPO


def _orpo_trainer(job: TrainingJob, inputs: TrlInputs, limits: tuple[int, int]) -> Any:
    config = job.config
    args = _experimental_orpo().ORPOConfig(
        **inputs.values, beta=config.preference.beta, max_length=_NO_LIMIT, disable_dropout=True
    )
    trainer = _orpo_class()(limits, args=args, **inputs.trainer_arguments(job))
    # The prompt is at most max_prompt_length < max_length tokens, so every pair keeps at
    # least one answer token: nothing is dropped.
    name = "train and eval sets" if inputs.evaluation is not None else "train set"
    _log_pairs(job.session, name, trainer.pair_stats)
    return trainer


def _orpo_class() -> type:
    """ORPOTrainer whose tokenization cuts prompts and answers to the configured limits."""
    ORPOTrainer = _experimental_orpo().ORPOTrainer

    class StudioORPOTrainer(ORPOTrainer):  # type: ignore[misc,valid-type]
        def __init__(self, limits: tuple[int, int], *args: Any, **kwargs: Any) -> None:
            # Set before the parent's constructor, which tokenizes the datasets.
            self.limits = limits
            self.pair_stats = PairStats()
            super().__init__(*args, **kwargs)

        def tokenize_row(self, feature: dict[str, Any], model: Any = None) -> dict[str, Any]:
            # trl has rendered the chat template by now: prompt, chosen and rejected are
            # strings, and chosen / rejected do not repeat the prompt.
            max_prompt_length, max_length = self.limits
            feature = dict(feature)
            feature["prompt"], cut = keep_last_tokens(
                self.processing_class, feature["prompt"], max_prompt_length
            )
            row = super().tokenize_row(feature, model)
            truncated = False
            for side in ("chosen", "rejected"):
                if len(row[f"{side}_input_ids"]) > max_length:
                    truncated = True
                    for key in ("input_ids", "attention_mask", "labels"):
                        row[f"{side}_{key}"] = row[f"{side}_{key}"][:max_length]
            self.pair_stats.pairs += 1
            self.pair_stats.prompts_truncated += cut
            self.pair_stats.answers_truncated += truncated
            return row

    return StudioORPOTrainer


def _experimental_orpo() -> Any:
    """trl.experimental.orpo, without its unstable-API warning on the user's terminal."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from trl.experimental import orpo
    return orpo


def keep_last_tokens(tokenizer: PreTrainedTokenizerBase, text: str, limit: int) -> tuple[str, bool]:
    """`text` cut at a token boundary so that at most `limit` tokens remain; (text, was cut)."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoded["offset_mapping"]
    if len(offsets) <= limit:
        return text, False
    start = offsets[len(offsets) - limit][0]
    return text[start:], True


def use_base_as_reference(model: Any, session: TrainingSession, trainer_name: str) -> None:
    """The reference model of DPO / KTO: the base (adapters off) for an adapter method, else
    trl's frozen copy; logged, so a user knows what the run compared against."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        if "ref" in model.peft_config:
            # Without a "ref" adapter trl computes reference log-probs with adapters disabled.
            model.delete_adapter("ref")
        session.log(f"{trainer_name} reference model: the base model (adapters switched off)")
    else:
        session.log(f"{trainer_name} reference model: a frozen copy of the base model")


def _log_pairs(session: TrainingSession, name: str, stats: PairStats) -> None:
    session.log(f"{name}: {stats.summary()}", "warning" if stats.lossy else "info")
