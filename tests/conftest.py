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


def selects_gpu_tests(markexpr: str) -> bool:
    """Whether `-m markexpr` would run a test marked only `gpu`. An expression that does not
    name `gpu` never does: pytest_collection_modifyitems leaves the gpu tests out of it."""
    if "gpu" not in markexpr:
        return False
    try:
        from _pytest.mark.expression import Expression

        return bool(Expression.compile(markexpr).evaluate(lambda name, **_: name == "gpu"))
    except Exception:  # pytest's private API moved: read the expression plainly
        return "gpu" in markexpr and "not gpu" not in markexpr


def pytest_configure(config: pytest.Config) -> None:
    # The default suite assumes a CPU (fp32 results, device names, timings): on a GPU machine
    # it hides CUDA from itself and every subprocess. `-m gpu` leaves the GPU visible.
    if not selects_gpu_tests(config.option.markexpr or ""):
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A `-m` on the command line replaces addopts' `-m 'not gpu and not bench'`: keep the gpu
    # and bench tests out unless the expression names them, so `-m "not slow"` is the fast
    # lane and not the benchmarks.
    markexpr = config.option.markexpr or ""
    unnamed = [name for name in ("gpu", "bench") if name not in markexpr]
    if not unnamed:
        return
    left_out = [item for item in items if any(item.get_closest_marker(n) for n in unnamed)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]


@pytest.fixture(scope="module")
def pin_cpu():
    """For a test module that assumes CPU: torch reports no CUDA, in-process and to
    subprocesses, whatever `-m` selected."""
    import torch

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.cuda, "is_available", lambda: False)
        patch.setenv("CUDA_VISIBLE_DEVICES", "")
        yield


@pytest.fixture(scope="session")
def hostile_reference_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished tiny run (checkpoints at steps 2 and 4, an adapter) that the
    fault-injection tests copy and damage; never change it in place."""
    from tests.support.hostile_world import train_reference

    return train_reference(tmp_path_factory.mktemp("hostile") / "runs")


@pytest.fixture(scope="session")
def architecture_dir(tmp_path_factory, tiny_tokenizer):
    """`architecture_dir("gpt2")`: the folder of a tiny random model of that architecture
    (tests/support/architectures.py), built once per test session."""
    from tests.support.architectures import build_architecture

    root = tmp_path_factory.mktemp("architectures")
    built: dict[str, Path] = {}

    def folder(model_type: str) -> Path:
        if model_type not in built:
            built[model_type] = build_architecture(model_type, root / model_type, tiny_tokenizer)
        return built[model_type]

    return folder


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sample_data/configs/quickstart.yaml trained to its end by `ftstudio train` (150 steps,
    a checkpoint every 50), once per test session for all workers (tests/support/run_cache.py).
    Read it; copy it before changing anything in it."""
    from tests.support.cli import studio_process
    from tests.support.run_cache import trained_once

    def train(runs: Path) -> Path:
        result = studio_process(
            "train",
            str(SAMPLE_DATA / "configs" / "quickstart.yaml"),
            "--set",
            f"output.runs_dir={runs}",
            "--set",
            "training.save_steps=50",
            timeout=600,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        (run,) = runs.iterdir()
        return run

    return trained_once(tmp_path_factory, "quickstart", train)
