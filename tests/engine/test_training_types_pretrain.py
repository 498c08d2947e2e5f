"""Continued pre-training on a prepared corpus, and the forgetting counter-measures."""

from __future__ import annotations

import json

import pytest

from studio.config import DataSettings
from studio.data.loading import load_training_data
from studio.data.prepare import prepare_corpus
from studio.data.replay import mix_replay, replay_count
from studio.errors import DataError
from tests.conftest import REPO
from tests.support.sample_documents import PROSE, write_mixed_folder
from tests.support.training_runs import log_text, read_metrics, train_tiny

NEW_TOKENS = ["<river>", "tidewater", "<bridge>"]


@pytest.mark.slow
def test_pretrain_on_a_corpus_built_from_mixed_files(tmp_path) -> None:
    write_mixed_folder(tmp_path / "docs")
    corpus = tmp_path / "corpus.jsonl"
    report = prepare_corpus(tmp_path / "docs", corpus)
    assert len(report.kept) == 7
    result, run_dir, _ = train_tiny(
        tmp_path,
        {
            "training_type": "pretrain",
            "data": {"path": str(corpus), "max_length": 64},
            "training": {"max_steps": 12, "batch_size": 2, "learning_rate": 1e-2,
                         "packing": True, "logging_steps": 3},
        },
    )  # fmt: skip
    log = log_text(run_dir)
    assert result.state.value == "finished", log
    assert "kind:   text" in log and "documents split into max_length chunks" in log
    assert "no attention across examples" in log
    losses = [m["loss"] for m in read_metrics(run_dir) if m["type"] == "train"]
    assert losses[-1] < 0.75 * losses[0], losses
    assert (run_dir / "adapter" / "adapter_model.safetensors").exists()


def test_replay_mixes_in_the_configured_share() -> None:
    settings = DataSettings(
        path="sample_data/alpaca_en.jsonl",
        replay_path="sample_data/sharegpt_en.json",
        replay_fraction=0.2,
    )
    data = load_training_data(settings, "sft", base_dir=REPO)
    assert len(data.train) == 40
    mixed = mix_replay(data, settings, "sft", seed=1, base_dir=REPO)
    assert replay_count(40, 0.2) == 10
    assert len(mixed.train) == 50
    replayed = [record for record in mixed.train if record not in data.train]
    assert len(replayed) / len(mixed.train) == pytest.approx(0.2)
    assert "replay: mixed 10 records" in mixed.report.notes[-1]
    assert mixed.eval == data.eval  # eval stays the user's own data
    # Same seed, same mix; a replay file too small for the share is used whole and said so.
    assert mix_replay(data, settings, "sft", seed=1, base_dir=REPO).train == mixed.train
    greedy = settings.model_copy(update={"replay_fraction": 0.9})
    short = mix_replay(data, greedy, "sft", seed=1, base_dir=REPO)
    assert len(short.train) == 40 + 15 and "has only 15 usable records" in short.report.notes[-1]


def test_replay_must_suit_the_training_type() -> None:
    settings = DataSettings(
        path="sample_data/pretrain_en.txt", replay_path="sample_data/alpaca_en.jsonl"
    )
    data = load_training_data(settings, "pretrain", base_dir=REPO)
    with pytest.raises(DataError, match="replay dataset does not suit pretrain"):
        mix_replay(data, settings, "pretrain", base_dir=REPO)


@pytest.mark.slow
def test_vocabulary_extension_trains_and_saves_new_embeddings(tmp_path, tiny_model_dir) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.engine.vocabulary import match_tokenizer

    tokens_file = tmp_path / "tokens.txt"
    tokens_file.write_text("\n".join([*NEW_TOKENS, "<|im_end|>", ""]) + "\n", encoding="utf-8")
    corpus = tmp_path / "corpus.jsonl"
    text = PROSE.replace("river", "<river>").replace("bridges", "<bridge> tidewater bridges")
    corpus.write_text(
        "\n".join(json.dumps({"text": f"{text} Day {day}."}) for day in range(12)) + "\n",
        encoding="utf-8",
    )
    result, run_dir, _ = train_tiny(
        tmp_path,
        {
            "training_type": "pretrain",
            "model": {"extra_tokens_file": str(tokens_file)},
            "data": {"path": str(corpus), "max_length": 64},
            "training": {"max_steps": 6, "batch_size": 4, "learning_rate": 1e-2,
                         "logging_steps": 3},
        },
    )  # fmt: skip
    log = log_text(run_dir)
    assert result.state.value == "finished", log
    assert "vocabulary: added 3 tokens" in log and "(1 already known)" in log
    assert "peft trainable tokens" in log

    # The saved result, loaded with plain transformers + peft on a fresh base model.
    adapter = run_dir / "adapter"
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    base_tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert len(tokenizer) == len(base_tokenizer) + 3
    new_ids = tokenizer.convert_tokens_to_ids(NEW_TOKENS)
    assert tokenizer("a <river> bank", add_special_tokens=False)["input_ids"].count(new_ids[0]) == 1
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    match_tokenizer(base, tokenizer)
    tuned = PeftModel.from_pretrained(base, str(adapter))
    old_ids = list(range(10, 20))
    with torch.no_grad():
        embed = tuned.get_input_embeddings()
        trained_new, trained_old = embed(torch.tensor(new_ids)), embed(torch.tensor(old_ids))
        with tuned.disable_adapter():
            start_new, start_old = embed(torch.tensor(new_ids)), embed(torch.tensor(old_ids))
    assert not torch.allclose(trained_new, start_new)  # the new rows were trained and saved
    assert torch.equal(trained_old, start_old)  # only the new rows
