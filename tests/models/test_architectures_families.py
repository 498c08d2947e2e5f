"""The architecture matrix, part 2: every other architecture with the methods whose behaviour
depends on its layer names and weight layout (see test_architectures_methods.py). Every case
trains a model, so all are marked slow. The cases that each caught a bug: gemma2-lora (no SDPA:
attention auto must pick eager), phi3-ia3 (fused qkv_proj / gate_up_proj: no peft default),
gpt_neox-full (embed_out renamed lm_head on load)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.architecture_matrix import check_case

ARCHITECTURES = ("qwen2", "qwen3", "gemma2", "gemma3_text", "phi3", "mistral", "gpt_neox")
LAYOUT_METHODS = ("lora", "qlora", "ia3", "full", "freeze")
CASES = [(model_type, method) for model_type in ARCHITECTURES for method in LAYOUT_METHODS]


@pytest.mark.slow
@pytest.mark.parametrize(("model_type", "method"), CASES)
def test_trains_reloads_exports_and_resumes(
    model_type: str, method: str, architecture_dir, tmp_path: Path, monkeypatch
) -> None:
    check_case(architecture_dir(model_type), method, tmp_path, monkeypatch)
