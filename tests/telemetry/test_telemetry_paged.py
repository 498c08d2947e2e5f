"""Paged-optimizer state: reading bitsandbytes' page manager, and the residency estimate."""

from __future__ import annotations

import sys
from types import ModuleType, SimpleNamespace

import pytest

from studio.telemetry.paged import (
    ResidencyEstimator,
    estimate_residency,
    read_paged_totals,
    unaccounted_bytes,
)
from tests.support.paged_memory import FakePagedTensor, install_fake_bitsandbytes

GIB = 1024**3


def test_no_bitsandbytes_means_no_paged_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "bitsandbytes.functional", raising=False)
    assert read_paged_totals() == ()


def test_paged_tensors_are_summed_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_bitsandbytes(
        monkeypatch,
        [
            FakePagedTensor(1000, 4, device=0),
            FakePagedTensor(500, 1, device=0),  # 8-bit state
            FakePagedTensor(250, 4, device=1),
            object(),  # not a tensor: skipped, not an error
        ],
    )
    totals = read_paged_totals()
    assert [(t.cuda_index, t.paged_bytes, t.tensor_count) for t in totals] == [
        (0, 4500, 2),
        (1, 1000, 1),
    ]


def test_manager_without_expected_attributes_is_tolerated(monkeypatch: pytest.MonkeyPatch) -> None:
    functional = ModuleType("bitsandbytes.functional")
    manager_class = type("GlobalPageManager", (), {"_instance": object()})
    functional.GlobalPageManager = manager_class
    monkeypatch.setitem(sys.modules, "bitsandbytes.functional", functional)
    assert read_paged_totals() == ()


def test_real_bitsandbytes_page_manager_layout() -> None:
    """The installed bitsandbytes keeps paged tensors where read_paged_totals looks for them."""
    torch = pytest.importorskip("torch")
    functional = pytest.importorskip("bitsandbytes.functional")
    manager = functional.GlobalPageManager.get_instance()
    # get_paged needs CUDA; register a CPU tensor flagged the way get_paged flags its output.
    tensor = torch.zeros(1024, dtype=torch.float32)
    tensor.is_paged = True
    tensor.page_deviceid = 0
    manager.paged_tensors.append(tensor)
    try:
        totals = read_paged_totals()
        assert (totals[0].cuda_index, totals[0].paged_bytes) == (0, 4096)
    finally:
        manager.paged_tensors.remove(tensor)


def test_estimate_residency_arithmetic() -> None:
    # 70 GiB used on the device; processes account for 60 GiB; 0.5 GiB was unaccounted before
    # paging, so ~9.5 GiB of the 12 GiB paged state is resident and 2.5 GiB spilled.
    resident, spilled = estimate_residency(
        12 * GIB, 70 * GIB, [50 * GIB, 10 * GIB], baseline_bytes=GIB // 2
    )
    assert resident == int(9.5 * GIB) and spilled == int(2.5 * GIB)


def test_estimate_residency_clamps() -> None:
    # More unaccounted memory than paged state: everything resident, nothing spilled.
    assert estimate_residency(GIB, 80 * GIB, [10 * GIB], 0) == (GIB, 0)
    # Less used than the processes claim (counters read at different moments): all spilled.
    assert estimate_residency(GIB, 5 * GIB, [10 * GIB], 0) == (0, GIB)


def test_estimate_residency_unknowns() -> None:
    assert estimate_residency(0, None, None, 0) == (0, 0)  # nothing paged: nothing to spill
    assert estimate_residency(GIB, None, [GIB], 0) == (None, None)
    assert estimate_residency(GIB, 10 * GIB, None, 0) == (None, None)
    assert estimate_residency(GIB, 10 * GIB, [GIB, None], 0) == (None, None)
    assert unaccounted_bytes(10 * GIB, [GIB, None]) is None
    assert unaccounted_bytes(10 * GIB, [4 * GIB]) == 6 * GIB


def test_estimator_takes_baseline_before_paging() -> None:
    estimator = ResidencyEstimator()
    assert estimator.update(0, 0, 2 * GIB, [int(1.5 * GIB)]) == (0, 0)
    assert estimator.baseline(0) == GIB // 2
    # Paging starts: 4 GiB paged, device used grows by 3 GiB beyond the processes.
    resident, spilled = estimator.update(0, 4 * GIB, 5 * GIB, [int(1.5 * GIB)])
    assert (resident, spilled) == (3 * GIB, GIB)
    assert estimator.baseline(0) == GIB // 2  # not moved by readings taken while paging
    assert estimator.baseline(1) == 0  # a GPU never seen before paging: baseline 0


# ---------------------------------------------------------------- release after a run (issue 20)


def paged_cpu_tensor(elements: int):
    import torch

    tensor = torch.zeros(elements, dtype=torch.float32)
    tensor.is_paged = True  # as bitsandbytes.functional.get_paged flags its buffers
    tensor.page_deviceid = 0
    return tensor


def test_release_empties_the_page_manager_and_frees_what_nobody_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from studio.telemetry.paged import release_paged_state

    held = paged_cpu_tensor(100)  # still referenced (by this test): must not be freed
    optimizer = SimpleNamespace(state={"weight": {"state1": paged_cpu_tensor(1000)}})
    registered = [optimizer.state["weight"]["state1"], held]
    pointers = {id(t): t.data_ptr() for t in registered}
    install_fake_bitsandbytes(monkeypatch, registered)
    freed: list[int] = []
    assert release_paged_state(optimizer, free=freed.append) == (4400, 4000)
    assert optimizer.state == {} and registered == []
    assert freed == [pointers[next(iter(pointers))]]  # the optimizer's buffer, not `held`
    assert read_paged_totals() == ()
    # A second paged run registers its own state: the panel counts only that.
    registered.append(paged_cpu_tensor(10))
    (totals,) = read_paged_totals()
    assert totals.paged_bytes == 40
    assert held.is_paged


@pytest.mark.slow
def test_a_run_leaves_no_paged_state_behind(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """The engine releases the page manager when a run ends (a CPU run here: a buffer left by
    an earlier paged run stands in for bitsandbytes' state, which needs CUDA)."""
    from tests.support.training_runs import log_text, train_tiny

    registered = [paged_cpu_tensor(256)]
    install_fake_bitsandbytes(monkeypatch, registered)
    result, run_dir, _ = train_tiny(
        tmp_path,
        {
            "data": {"path": "sample_data/alpaca_en.jsonl", "max_length": 64},
            "training": {"max_steps": 1, "batch_size": 2},
        },
    )
    assert result.state.value == "finished", log_text(run_dir)
    assert registered == [] and read_paged_totals() == ()
    assert "paged optimizer state released: 0.0 MiB registered" in log_text(run_dir)
