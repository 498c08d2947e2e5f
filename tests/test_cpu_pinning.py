"""The default suite pins itself to the CPU, so that it also passes on a GPU machine."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, selects_gpu_tests


@pytest.mark.parametrize(
    ("markexpr", "gpu"),
    [
        ("not gpu and not bench", False),  # the default run (pyproject addopts)
        ("", False),
        ("slow", False),
        ("not slow", False),  # the fast lane: gpu tests are left out, not selected
        ("gpu", True),
        ("gpu and not slow", True),
        ("gpu or not gpu", True),
    ],
)
def test_only_a_selection_of_gpu_tests_keeps_cuda_visible(markexpr: str, gpu: bool) -> None:
    assert selects_gpu_tests(markexpr) is gpu


def test_this_default_run_hides_cuda(request: pytest.FixtureRequest) -> None:
    if selects_gpu_tests(request.config.option.markexpr or ""):
        pytest.skip("this run selected the gpu tests: CUDA stays visible")
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == ""
    # ... and so do the subprocesses that tests start (`ftstudio train`, the bench workers).
    code = "import os; print(repr(os.environ.get('CUDA_VISIBLE_DEVICES')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.stdout.strip() == "''"


def test_a_pinned_module_sees_no_cuda(pin_cpu) -> None:
    import torch

    from studio.config import ModelSettings
    from studio.models.loading import plan_device

    assert not torch.cuda.is_available()
    assert plan_device(ModelSettings()).device == "cpu"
