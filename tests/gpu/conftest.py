"""The `gpu` tests: every CUDA path once, on the tiny model and a small model of real shape.

They run with `python -m pytest -m gpu tests/gpu` on a machine with a CUDA GPU (and by
`python -m bench.gpu_check`), and are skipped anywhere else.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from tests.conftest import selects_gpu_tests

    if not selects_gpu_tests(config.option.markexpr or "") or _cuda_available():
        return  # deselected anyway (no torch import for that), or they can run
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def needs_module(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        importlib.util.find_spec(name) is None, reason=f"{name} is not installed"
    )


# A small model of a real shape: Llama-3.2-1B's width, heads and vocabulary, two layers.
SMALL_REAL_SHAPE = {
    "model_type": "llama",
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 2,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
    "tie_word_embeddings": True,
}


@pytest.fixture(scope="session")
def small_real_model(tmp_path_factory) -> Path:
    """Random weights of SMALL_REAL_SHAPE with the tiny tokenizer, saved like a checkpoint."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from studio.models.tiny import ensure_tiny_model

    folder = tmp_path_factory.mktemp("small-real-shape")
    tokenizer = AutoTokenizer.from_pretrained(ensure_tiny_model())
    shape = dict(SMALL_REAL_SHAPE)
    config = AutoConfig.for_model(
        shape.pop("model_type"),
        **shape,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    torch.cuda.empty_cache()
    return folder
