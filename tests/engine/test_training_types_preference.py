"""DPO and ORPO on the sample preference data: they train and their metrics reach metrics.jsonl."""

from __future__ import annotations

import pytest

from studio.config import config_from_dict
from studio.engine.preference import fit_dpo_lengths, keep_last_tokens, prompt_limits
from studio.engine.vocabulary import plan_vocabulary
from studio.errors import ConfigError
from tests.support.training_runs import log_text, train_and_eval_metrics, train_tiny

PREFERENCE_RUN = {
    "data": {"path": "sample_data/preference_en.jsonl", "max_length": 128, "eval_fraction": 0.1},
    "training": {"max_steps": 6, "batch_size": 4, "learning_rate": 2e-3, "logging_steps": 1,
                 "eval_steps": 3, "warmup_steps": 1},
}  # fmt: skip


@pytest.mark.slow
def test_dpo_trains_with_base_model_as_reference(tmp_path) -> None:
    result, run_dir, _ = train_tiny(tmp_path, {"training_type": "dpo", **PREFERENCE_RUN})
    log = log_text(run_dir)
    assert result.state.value == "finished", log
    assert "DPO reference model: the base model (adapters switched off)" in log
    assert "train set: 27 preference pairs" in log
    train, evals = train_and_eval_metrics(run_dir)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"):
        assert all(key in m for m in train + evals), key
    # The policy starts equal to its reference, so the first rewards are exactly zero.
    assert train[0]["rewards/chosen"] == 0.0 and train[0]["loss"] == pytest.approx(0.6931, 1e-3)
    assert train[-1]["loss"] < train[0]["loss"]
    assert train[-1]["rewards/margins"] > 0
    adapter = run_dir / "adapter"
    assert (adapter / "adapter_config.json").exists()
    assert not (adapter / "ref").exists()  # no second, reference adapter saved


@pytest.mark.slow
def test_orpo_trains_and_cuts_long_prompts(tmp_path) -> None:
    result, run_dir, _ = train_tiny(
        tmp_path,
        {"training_type": "orpo", **PREFERENCE_RUN, "preference": {"max_prompt_length": 8}},
    )
    log = log_text(run_dir)
    assert result.state.value == "finished", log
    assert "prompts cut to max_prompt_length" in log
    train, evals = train_and_eval_metrics(run_dir)
    for key in ("nll_loss", "log_odds_ratio", "rewards/accuracies", "rewards/margins"):
        assert all(key in m for m in train + evals), key
    assert train[-1]["nll_loss"] < train[0]["nll_loss"]


def test_dpo_pairs_keep_the_prompt_end_and_the_answer_start() -> None:
    from datasets import Dataset

    pairs = Dataset.from_dict(
        {
            "prompt_ids": [list(range(10)), [1, 2]],
            "chosen_ids": [[20, 21, 22], [30]],
            "rejected_ids": [[40], [50, 51, 52, 53, 54, 55]],
        }
    )
    fitted, stats = fit_dpo_lengths(pairs, max_prompt_length=4, max_length=6)
    assert fitted["prompt_ids"] == [[6, 7, 8, 9], [1, 2]]
    assert fitted["chosen_ids"] == [[20, 21], [30]]
    assert fitted["rejected_ids"] == [[40], [50, 51, 52, 53]]
    assert (stats.pairs, stats.prompts_truncated, stats.answers_truncated) == (2, 1, 2)
    assert "1 prompts cut to max_prompt_length" in stats.summary()


def test_prompt_cut_keeps_its_last_tokens(tiny_tokenizer) -> None:
    text = "<|im_start|>user\nA long question about rivers and bridges<|im_end|>\n"
    cut, was_cut = keep_last_tokens(tiny_tokenizer, text, 5)
    assert was_cut and text.endswith(cut)
    assert len(tiny_tokenizer(cut, add_special_tokens=False)["input_ids"]) <= 6
    assert keep_last_tokens(tiny_tokenizer, "short", 5) == ("short", False)


def test_preference_limits_and_vocabulary_are_checked(tmp_path) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("<river>\n", encoding="utf-8")
    config = config_from_dict({"training_type": "dpo", "model": {"extra_tokens_file": str(tokens)}})
    with pytest.raises(ConfigError, match="cannot be used with dpo"):
        plan_vocabulary(config)
    assert prompt_limits(256, 128) == (64, 128)
    assert prompt_limits(100, 128) == (100, 128)


@pytest.mark.parametrize(
    ("module", "kind", "wrong_kind", "records"),
    [
        ("preference", "preference", "dpo needs preference pairs, got sft", "preference pairs"),
        ("kto", "kto", "kto needs answers labelled good or bad, got sft data", "the answers"),
    ],
)
def test_trl_trainers_refuse_wrong_data_and_missing_chat_template(
    module: str, kind: str, wrong_kind: str, records: str
) -> None:
    import importlib
    from types import SimpleNamespace

    from studio.errors import DataError

    build_trainer = importlib.import_module(f"studio.engine.{module}").build_trainer
    config = SimpleNamespace(training_type="dpo" if kind == "preference" else "kto")

    def job(data_kind: str, template: str | None) -> SimpleNamespace:
        tokenizer = SimpleNamespace(chat_template=template)
        return SimpleNamespace(config=config, session=None, data=SimpleNamespace(kind=data_kind),
                               tokenizer=tokenizer)  # fmt: skip

    with pytest.raises(DataError) as wrong:
        build_trainer(job("sft", "{{ messages }}"))
    assert wrong.value.message == wrong_kind
    with pytest.raises(DataError) as untemplated:
        build_trainer(job(kind, None))
    assert untemplated.value.message == (
        f"the model's tokenizer has no chat template, so {records} cannot be formatted"
    )
    assert "model.chat_template_preset" in (untemplated.value.advice or "")
