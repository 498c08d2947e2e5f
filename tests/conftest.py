"""Shared test setup: no network, one cache for the built-in tiny model, repo paths."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DATA = REPO / "sample_data"

# Set before any test imports torch or transformers, and inherited by subprocesses.
# One torch thread per test process: the suite runs one process per core (pytest-xdist), and
# two processes with two threads each on two cores thrash (a tiny-model step went from 0.09 s
# to 1.5 s in a measurement here).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ.setdefault(
    "FTSTUDIO_CACHE_DIR", str(Path(tempfile.gettempdir()) / "ftstudio-test-cache")
)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from studio.models.tiny import ensure_tiny_model

    return ensure_tiny_model()


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def architecture_dir(tmp_path_factory, tiny_tokenizer):
    """`architecture_dir("gpt2")`: the folder of a tiny random model of that architecture
    (tests/architectures.py), built once per test session."""
    from tests.architectures import build_architecture

    root = tmp_path_factory.mktemp("architectures")
    built: dict[str, Path] = {}

    def folder(model_type: str) -> Path:
        if model_type not in built:
            built[model_type] = build_architecture(model_type, root / model_type, tiny_tokenizer)
        return built[model_type]

    return folder
