"""SFT done right: assistant-only labels, packing without cross-contamination, evaluation."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from studio.engine.encoding import IGNORE_INDEX, PaddingCollator, encode_records
from studio.engine.evaluation import EvaluationTracker, evaluation_callbacks
from studio.engine.packing import (
    PackedCollator,
    check_isolation,
    pack_features,
    refuse_unsupported_method,
)
from studio.errors import ConfigError
from tests.conftest import SAMPLE_DATA
from tests.support.training_runs import log_text, read_metrics, train_tiny

CONVERSATION = [
    {"role": "system", "content": "You answer in one short sentence."},
    {"role": "user", "content": "Name a primary colour."},
    {"role": "assistant", "content": "Red is a primary colour."},
    {"role": "user", "content": "And another?"},
    {"role": "assistant", "content": "Blue is one too."},
]
# A ChatML template without {% generation %} markers, as most hub models ship.
PLAIN_CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def trained_text(tokenizer, feature) -> str:
    pairs = zip(feature["input_ids"], feature["labels"], strict=True)
    return tokenizer.decode([token for token, label in pairs if label != IGNORE_INDEX])


@pytest.mark.parametrize("template", ["tokenizer", "plain chatml"])
def test_only_assistant_tokens_are_labelled(tiny_tokenizer, template: str) -> None:
    tokenizer = tiny_tokenizer
    if template == "plain chatml":
        from copy import deepcopy

        tokenizer = deepcopy(tiny_tokenizer)
        tokenizer.chat_template = PLAIN_CHATML
    features, _ = encode_records(tokenizer, [{"messages": CONVERSATION}], "conversation", 512)
    (feature,) = features
    trained = trained_text(tokenizer, feature)
    assert trained.replace("\n", "") == (
        "Red is a primary colour.<|im_end|>Blue is one too.<|im_end|>"
    )
    # Every label is either ignored or the token itself (no shift, the model shifts).
    for token, label in zip(feature["input_ids"], feature["labels"], strict=True):
        assert label in (IGNORE_INDEX, token)


def sample_features(tokenizer, count: int = 12):
    records = []
    with (SAMPLE_DATA / "messages_en.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            records.append(json.loads(line))
    features, _ = encode_records(tokenizer, records[:count], "conversation", 512)
    return features


def test_packing_keeps_every_example_apart(tiny_tokenizer) -> None:
    features = sample_features(tiny_tokenizer)
    rows, stats = pack_features(features, 256)
    assert stats.examples == len(features) and stats.rows == len(rows) < len(features)
    assert all(len(row["input_ids"]) <= 256 for row in rows)
    assert sum(len(row["input_ids"]) for row in rows) == sum(len(f["input_ids"]) for f in features)
    for row in rows:
        starts = [i for i, position in enumerate(row["position_ids"]) if position == 0]
        for start in starts:
            assert row["labels"][start] == IGNORE_INDEX  # never predicted from the previous one
    batch = PackedCollator()(rows[:2])
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
    assert batch["use_cache"] is False


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_loss_equals_padded_loss(tiny_model_dir, tiny_tokenizer, attention) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attention)
    model.eval()
    features = sample_features(tiny_tokenizer, 8)
    rows, _ = pack_features(features, 512)
    with torch.no_grad():
        padded = model(**PaddingCollator(tiny_tokenizer.pad_token_id)(features)).loss
        packed = model(**PackedCollator()(rows)).loss
    assert packed.item() == pytest.approx(padded.item(), rel=1e-5)
    assert check_isolation(model, features) < 1e-4


def test_isolation_check_refuses_leaking_attention(tiny_model_dir, tiny_tokenizer, monkeypatch):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    original = PackedCollator.__call__

    def with_cache(self, batch):  # what a collator without use_cache=False would do
        output = original(self, batch)
        output.pop("use_cache")
        return output

    monkeypatch.setattr(PackedCollator, "__call__", with_cache)
    with pytest.raises(ConfigError, match="attend to each other"):
        check_isolation(model, sample_features(tiny_tokenizer, 2))
    with pytest.raises(ConfigError, match="virtual tokens"):
        refuse_unsupported_method("prefix_tuning")


@pytest.mark.slow
def test_sft_with_packing_and_eval_trains(tmp_path) -> None:
    result, run_dir, _ = train_tiny(
        tmp_path,
        {
            "training_type": "sft",
            "data": {"path": "sample_data/alpaca_en.jsonl", "max_length": 256,
                     "eval_fraction": 0.1},
            "training": {"max_steps": 16, "batch_size": 2, "learning_rate": 3e-3,
                         "packing": True, "logging_steps": 4, "eval_steps": 8},
        },
    )  # fmt: skip
    assert result.state.value == "finished", log_text(run_dir)
    log = log_text(run_dir)
    assert "packed 36 examples into" in log and "no attention across examples" in log
    metrics = read_metrics(run_dir)
    losses = [m["loss"] for m in metrics if m["type"] == "train"]
    assert losses[-1] < 0.75 * losses[0], losses
    evals = [m for m in metrics if m["type"] == "eval"]
    assert [m["step"] for m in evals] == [8, 16]
    status = json.loads((run_dir / "status.json").read_text())
    best = min(evals, key=lambda m: m["loss"])
    assert status["best_eval_step"] == best["step"]
    assert status["best_eval_loss"] == pytest.approx(best["loss"])


def test_early_stopping_after_patience_evaluations() -> None:
    logged: list[str] = []
    session = SimpleNamespace(run_dir=None, log=logged.append)
    tracker = EvaluationTracker(session, patience=2)
    control = SimpleNamespace(should_training_stop=False)
    for step, loss in [(10, 1.0), (20, 0.8), (30, 0.85), (40, 0.9)]:
        assert not control.should_training_stop
        tracker.on_evaluate(None, SimpleNamespace(global_step=step), control, {"eval_loss": loss})
    assert control.should_training_stop and tracker.stopped_early_at == 40
    assert (tracker.best_step, tracker.best_loss) == (20, 0.8)
    assert "early stopping at step 40" in logged[-1]


def test_early_stopping_needs_an_eval_split() -> None:
    job = SimpleNamespace(config=SimpleNamespace(training=SimpleNamespace(
        early_stopping_patience=3)), session=None)  # fmt: skip
    with pytest.raises(ConfigError, match="needs an eval split"):
        evaluation_callbacks(job, has_eval=False)
