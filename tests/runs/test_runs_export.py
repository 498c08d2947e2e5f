"""Export: the adapter loads with plain peft, the merged model with plain transformers and
gives the logits of base + adapter; a model card describes the run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from studio.config import load_config
from studio.engine import RunState
from studio.engine.session import TrainingSession
from studio.errors import ConfigError
from studio.runs import export_run
from tests.conftest import REPO, SAMPLE_DATA

QUICKSTART = SAMPLE_DATA / "configs" / "quickstart.yaml"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    config = load_config(
        QUICKSTART,
        [
            f"output.runs_dir={runs}",
            "output.run_name=trained",
            "training.max_steps=10",
            "training.save_steps=5",
            "data.eval_fraction=0.1",
        ],
    )
    result = TrainingSession(config, telemetry_interval=None).run()
    assert result.state is RunState.FINISHED
    return runs / "trained"


def prompt_ids(tokenizer):
    question = [{"role": "user", "content": "What is the capital of France?"}]
    return tokenizer.apply_chat_template(
        question, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )


@pytest.mark.slow
def test_adapter_export_loads_with_plain_peft(trained_run: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.models.tiny import ensure_tiny_model

    result = export_run(trained_run, tmp_path / "adapter")
    assert result.kind == "adapter" and result.source_step is None
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= set(result.files)
    assert not any(name.startswith(("optimizer", "rng_state")) for name in result.files)
    tokenizer = AutoTokenizer.from_pretrained(result.path)
    base = AutoModelForCausalLM.from_pretrained(ensure_tiny_model())
    model = PeftModel.from_pretrained(base, str(result.path))
    with torch.no_grad():
        assert model(**prompt_ids(tokenizer)).logits.isfinite().all()

    card = (result.path / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: peft" in card
    assert "`tiny-demo`" in card and "lora (rank 16" in card
    assert "| learning_rate | 0.003 |" in card and "| batch_size | 8 |" in card
    assert "sample_data/alpaca_en.jsonl" in card
    assert "final train loss:" in card and "best eval loss:" in card
    assert "status: finished after 10 steps" in card

    # Exporting again replaces the earlier export; a folder that is not an export is refused.
    export_run(trained_run, tmp_path / "adapter")
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not an ftstudio export"):
        export_run(trained_run, tmp_path / "precious")


@pytest.mark.slow
def test_merged_model_matches_base_plus_adapter(trained_run: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.models.tiny import ensure_tiny_model

    result = export_run(trained_run, tmp_path / "merged", merged=True)
    assert "model.safetensors" in result.files and "adapter_config.json" not in result.files
    assert "library_name: transformers" in (result.path / "README.md").read_text()

    merged = AutoModelForCausalLM.from_pretrained(result.path, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(result.path)
    base = AutoModelForCausalLM.from_pretrained(ensure_tiny_model(), dtype=torch.float32)
    tuned = PeftModel.from_pretrained(base, str(trained_run / "adapter"))
    inputs = prompt_ids(tokenizer)
    with torch.no_grad():
        expected = tuned(**inputs).logits
        actual = merged(**inputs).logits
        with tuned.disable_adapter():
            plain = tuned(**inputs).logits
    assert (expected - plain).abs().max() > 1e-2  # the adapter changes something
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_export_without_an_adapter_uses_the_newest_complete_checkpoint(
    trained_run: Path, tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from studio.models.tiny import ensure_tiny_model

    copy = tmp_path / "no-adapter"
    shutil.copytree(trained_run, copy, ignore=shutil.ignore_patterns("adapter", "exports"))
    result = export_run(copy)
    assert result.source_step == 10 and result.path == copy / "exports" / "adapter"
    assert "Exported from the checkpoint at step 10" in (result.path / "README.md").read_text()
    PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(ensure_tiny_model()), str(result.path)
    )


@pytest.mark.slow
def test_export_command(trained_run: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "studio",
            "export",
            "trained",
            "--runs-dir",
            str(trained_run.parent),
            "-o",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "adapter_model.safetensors" in result.stdout
    note = json.loads((tmp_path / "out" / "ftstudio_export.json").read_text())
    assert note["kind"] == "adapter"
