"""KTO on the tiny model, a run mixing two datasets, a base model without a chat template
trained with a preset and chatted with through it, and plain completion after pre-training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from studio.chat import ChatModel, GenerationSettings, resolve_target
from studio.cli import main
from studio.models.chat_templates import PRESETS
from tests.conftest import SAMPLE_DATA
from tests.support.files import write_jsonl
from tests.support.training_runs import log_text, train_and_eval_metrics, train_tiny

SHORT = {"max_steps": 3, "batch_size": 4, "learning_rate": 2e-3, "logging_steps": 1,
         "warmup_steps": 0}  # fmt: skip


def write_kto(path: Path) -> Path:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What is {n} plus {n}?"},
                {"role": "assistant", "content": str(2 * n) if n % 2 == 0 else str(n)},
            ],
            "label": n % 2 == 0,
        }
        for n in range(16)
    ]
    return write_jsonl(path, rows)


@pytest.mark.slow
def test_kto_trains_on_labelled_answers(tmp_path: Path) -> None:
    data = write_kto(tmp_path / "kto.jsonl")
    result, run_dir, _ = train_tiny(
        tmp_path,
        {"training_type": "kto",
         "data": {"path": str(data), "max_length": 64, "eval_fraction": 0.25},
         "training": {**SHORT, "max_steps": 4}},
    )  # fmt: skip
    log = log_text(run_dir)
    assert result.state.value == "finished", log
    assert "format: kto" in log
    assert "held out 4 of 16 records for eval" in log
    assert "KTO: 7 answers labelled good, 5 bad" in log
    assert "eval set: 4 labelled answers" in log
    assert "KTO reference model: the base model (adapters switched off)" in log
    train, evals = train_and_eval_metrics(run_dir)
    assert len(train) == 4
    assert evals and all("rewards/chosen" in m and "kl" in m for m in evals)
    for key in ("kl", "rewards/chosen", "rewards/rejected", "logps/chosen"):
        assert all(key in m for m in train), key
    # The policy starts equal to its reference: KTO's loss is then exactly 0.5.
    assert train[0]["loss"] == pytest.approx(0.5, abs=1e-4)
    assert (run_dir / "adapter" / "adapter_config.json").exists()
    assert not (run_dir / "adapter" / "ref").exists()


def test_kto_needs_two_answers_per_batch() -> None:
    from studio.config import config_from_dict
    from studio.errors import ConfigError

    with pytest.raises(ConfigError, match="batch_size of 2 or more"):
        config_from_dict({"training_type": "kto", "training": {"batch_size": 1}})


@pytest.mark.slow
def test_a_run_mixing_two_datasets_with_weights(tmp_path: Path) -> None:
    result, run_dir, _ = train_tiny(
        tmp_path,
        {
            "data": {
                "path": str(SAMPLE_DATA / "alpaca_en.jsonl"),
                "weight": 1,
                "mix": [{"path": str(SAMPLE_DATA / "sharegpt_en.json"), "weight": 1}],
                "max_length": 128,
            },
            "training": SHORT,
        },
    )
    log = log_text(run_dir)
    assert result.state.value == "finished", log
    report = json.loads((run_dir / "data_report.json").read_text(encoding="utf-8"))
    first, second = report["mix"]
    assert (first["format"], second["format"]) == ("alpaca", "sharegpt")
    assert first["used"] == second["used"] == min(first["available"], second["available"])
    assert first["share"] == second["share"] == 0.5
    assert f"mix: {SAMPLE_DATA / 'sharegpt_en.json'} (sharegpt, weight 1)" in log


@pytest.fixture(scope="module")
def base_model_without_template(tmp_path_factory, tiny_model_dir: Path) -> Path:
    """The tiny model as a base model: its tokenizer saved without a chat template."""
    folder = tmp_path_factory.mktemp("base") / "tiny-base"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.pop("chat_template", None)
    config_path.write_text(json.dumps(config), encoding="utf-8")
    from transformers import AutoTokenizer

    assert not AutoTokenizer.from_pretrained(folder).chat_template
    return folder


@pytest.mark.slow
def test_base_model_trained_with_a_preset_and_chatted_through_it(
    tmp_path: Path, base_model_without_template: Path
) -> None:
    result, run_dir, _ = train_tiny(
        tmp_path,
        {"model": {"source": str(base_model_without_template)},
         "data": {"path": str(SAMPLE_DATA / "alpaca_en.jsonl"), "max_length": 128},
         "training": SHORT},
    )  # fmt: skip
    log = log_text(run_dir)
    assert result.state.value == "finished", log
    note = "chat template: the tokenizer has none, so the 'chatml' preset is used"
    assert note in log
    assert log.index(note) < log.index("method LoRA")  # decided before the model loaded
    saved = (run_dir / "adapter" / "chat_template.jinja").read_text(encoding="utf-8")
    assert saved == PRESETS["chatml"].template

    chat = ChatModel.load(resolve_target(run_dir))
    try:
        assert chat.tokenizer.chat_template == PRESETS["chatml"].template
        prompt = chat.encode([], "Hello?")
        assert chat.tokenizer.decode(prompt.ids) == (
            "<|im_start|>user\nHello?<|im_end|>\n<|im_start|>assistant\n"
        )
        assert isinstance(chat.reply([], "Hello?", GenerationSettings(max_new_tokens=4)), str)
    finally:
        chat.close()
    # Export carries the same template, so other tools format prompts the same way.
    merged = tmp_path / "merged"
    assert main(["export", str(run_dir), "--merged", "-o", str(merged)]) == 0
    assert (merged / "chat_template.jinja").read_text(encoding="utf-8") == saved


@pytest.mark.slow
def test_explicit_preset_and_none(tmp_path: Path, base_model_without_template: Path) -> None:
    base = {"model": {"source": str(base_model_without_template),
                      "chat_template_preset": "alpaca"},
            "data": {"path": str(SAMPLE_DATA / "alpaca_en.jsonl"), "max_length": 128},
            "training": {**SHORT, "max_steps": 1}}  # fmt: skip
    result, run_dir, _ = train_tiny(tmp_path / "alpaca", base)
    assert result.state.value == "finished", log_text(run_dir)
    assert "chat template: the 'alpaca' preset" in log_text(run_dir)
    saved = (run_dir / "adapter" / "chat_template.jinja").read_text(encoding="utf-8")
    assert saved == PRESETS["alpaca"].template

    base["model"]["chat_template_preset"] = "none"
    result, run_dir, _ = train_tiny(tmp_path / "none", base)
    log = log_text(run_dir)
    assert result.state.value == "failed"
    assert "has no chat template, so conversation records cannot be formatted" in log
    assert "method LoRA" not in log  # refused before the model was loaded


@pytest.mark.slow
def test_plain_completion_on_a_pretrained_run(tmp_path: Path, capsys) -> None:
    sentence = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join([sentence] * 8) + "\n", encoding="utf-8")
    result, run_dir, _ = train_tiny(
        tmp_path,
        {"training_type": "pretrain",
         "data": {"path": str(corpus), "max_length": 64, "deduplicate": False},
         "training": {"max_steps": 40, "batch_size": 8, "learning_rate": 1e-2,
                      "logging_steps": 10, "warmup_steps": 0}},
    )  # fmt: skip
    assert result.state.value == "finished", log_text(run_dir)
    chat = ChatModel.load(resolve_target(run_dir))
    try:
        settings = GenerationSettings(completion=True, max_new_tokens=12)
        prompt = chat.encode_completion("alpha beta gamma")
        assert (
            prompt.ids == chat.tokenizer("alpha beta gamma", add_special_tokens=False)["input_ids"]
        )  # the text as written: no chat template around it
        assert chat.reply([], "alpha beta gamma", settings).startswith(" delta epsilon")
    finally:
        chat.close()
    assert main(["chat", str(run_dir), "--completion", "--prompt", "alpha beta gamma",
                 "--max-new-tokens", "6"]) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith(" delta")
