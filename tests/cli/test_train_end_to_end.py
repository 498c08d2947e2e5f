"""The quickstart as a user runs it: `ftstudio train sample_data/configs/quickstart.yaml`."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from studio.config import load_config
from studio.engine import EventBus, RunState, StepMetrics, TrainingControl
from studio.engine.session import TrainingSession
from tests.conftest import SAMPLE_DATA
from tests.support.cli import studio_process

QUICKSTART = SAMPLE_DATA / "configs" / "quickstart.yaml"


@pytest.mark.slow
def test_quickstart_learns(quickstart_run: Path) -> None:
    metrics = [json.loads(line) for line in (quickstart_run / "metrics.jsonl").open()]
    losses = [m["loss"] for m in metrics if m["type"] == "train"]
    assert metrics[0]["step"] == 1
    assert losses[-1] < 0.4 * losses[0], losses
    status = json.loads((quickstart_run / "status.json").read_text())
    assert status["state"] == "finished"
    assert (quickstart_run / "config.yaml").exists()
    assert (quickstart_run / "log.txt").read_text().count("trainable params") == 1
    assert json.loads((quickstart_run / "data_report.json").read_text())["kept"] == 40


@pytest.mark.slow
def test_adapter_loads_with_plain_peft_and_answers(quickstart_run: Path, tiny_model_dir) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = quickstart_run / "adapter"
    assert (adapter / "adapter_config.json").exists()
    assert (adapter / "adapter_model.safetensors").exists()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tuned = PeftModel.from_pretrained(base, str(adapter))
    question = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(
        question, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        tuned_ids = tuned.generate(**inputs, max_new_tokens=20, do_sample=False)
        with tuned.disable_adapter():
            base_ids = tuned.generate(**inputs, max_new_tokens=20, do_sample=False)
    prompt_length = inputs["input_ids"].shape[1]
    tuned_answer = tokenizer.decode(tuned_ids[0, prompt_length:], skip_special_tokens=True)
    base_answer = tokenizer.decode(base_ids[0, prompt_length:], skip_special_tokens=True)
    assert tuned_answer == "The capital of France is Paris."
    assert base_answer != tuned_answer


def test_bad_config_gives_an_error_not_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("training:\n  learning_rate: 5\n")
    result = studio_process("train", str(config))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "training.learning_rate = 5" in result.stderr and "line 2" in result.stderr


@pytest.mark.slow
def test_bad_dataset_fails_before_the_model_loads(tmp_path: Path) -> None:
    result = studio_process(
        "train",
        str(QUICKSTART),
        "--set",
        f"output.runs_dir={tmp_path}",
        "--set",
        "data.path=sample_data/bad/alpaca_with_errors.jsonl",
        "--set",
        "data.on_bad_record=stop",
    )
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert "alpaca_with_errors.jsonl:" in output
    (run_dir,) = tmp_path.iterdir()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed"
    assert "loading" not in (run_dir / "log.txt").read_text()


@pytest.mark.slow
def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    result = studio_process(
        "train",
        str(QUICKSTART),
        "--set",
        f"output.runs_dir={tmp_path}",
        "--set",
        f"model.source={tmp_path / 'no-such-model'}",
    )
    assert result.returncode == 1
    assert "model folder not found" in result.stdout and "Traceback" not in result.stdout


@pytest.mark.slow
def test_stop_from_another_thread_saves_the_adapter(tmp_path: Path) -> None:
    config = load_config(
        QUICKSTART,
        [f"output.runs_dir={tmp_path}", "training.max_steps=400", "training.logging_steps=1"],
    )
    bus, control = EventBus(), TrainingControl()
    steps: list[int] = []
    stop_at = threading.Event()

    def watch(event) -> None:
        if isinstance(event, StepMetrics):
            steps.append(event.step)
            if event.step >= 3:
                control.stop()
                stop_at.set()

    bus.subscribe(watch)
    result = TrainingSession(config, bus, control).run()
    assert stop_at.is_set()
    assert result.state is RunState.STOPPED
    assert result.steps < 400
    assert result.adapter_dir and (Path(result.adapter_dir) / "adapter_config.json").exists()


def test_memory_estimate_and_fit_warning_are_logged(tmp_path: Path) -> None:
    from studio.engine.memory_check import warn_if_it_will_not_fit
    from studio.models.tiny import ensure_tiny_model

    lines: list[tuple[str, str]] = []

    def log(text: str, level: str = "info") -> None:
        lines.append((text, level))

    config = load_config(QUICKSTART)
    warn_if_it_will_not_fit(config, str(ensure_tiny_model()), "cpu", log)
    assert lines[0][0].startswith("memory estimate: weights")
    assert not any(level == "warning" for _, level in lines)  # a tiny model fits in RAM

    huge = load_config(QUICKSTART, ["training.batch_size=4096", "data.max_length=262144"])
    lines.clear()
    warn_if_it_will_not_fit(huge, str(ensure_tiny_model()), "cpu", log)
    warnings = [text for text, level in lines if level == "warning"]
    assert "does not fit" in warnings[0]
    assert any("batch" in text for text in warnings[1:])
