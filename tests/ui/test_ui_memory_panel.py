"""The Train screen's memory panel: scripted GPU telemetry through the real sampler (fake NVML,
torch and bitsandbytes state), the monitor's series and warning episodes, and the panel drawn
in the real app at 80x24; on this machine, the host view from the real sampler.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from textual.widgets import Static

from studio.engine.events import RunState, StateChanged, StepMetrics, TelemetryEvent
from studio.telemetry import TelemetrySampler, TelemetrySnapshot
from studio.telemetry.fake_nvml import FakeGpu, FakeNvml
from studio.telemetry.memory_warnings import LOW_GPU_MEMORY, PAGED_SPILL, low_free_threshold
from studio.ui.app import make_app
from studio.ui.runs.monitor import (
    MEMORY_ALLOCATED,
    MEMORY_PAGED,
    MEMORY_RAM_USED,
    MEMORY_RESERVED,
    MEMORY_RSS,
    MEMORY_SPILLED,
    MEMORY_USED,
    RunMonitor,
)
from studio.ui.widgets.memory_panel import (
    MemoryPanel,
    MemoryPlot,
    bars,
    clock,
    fit,
    nonzero_runs,
    others_text,
    rate,
    time_ticks,
)
from tests.support.ui import isolated_services, settle

GIB = 1024**3
TOTAL = 80 * GIB
OTHER_PID = 4_000_000  # not this process: another user's job
CONTEXT = GIB // 2  # CUDA context: NVML counts it for the process, torch does not
BASELINE = GIB // 4  # driver memory no process accounts for


class PagedState:
    """bitsandbytes' paged optimizer state as telemetry reads it (one tensor per GiB)."""

    def __init__(self, gib: int) -> None:
        self.is_paged, self.page_deviceid = True, 0
        self.gib = gib

    def numel(self) -> int:
        return self.gib * GIB

    def element_size(self) -> int:
        return 1


@dataclass
class ScriptedRun:
    """A QLoRA run on a fake H100 beside another user's job. Set the figures, then `sample()`:
    NVML's device "used" counts the paged state that fits on the GPU, as the driver would."""

    reserved: int = 20 * GIB
    paged: int = 0
    other: int = 12 * GIB
    utilisation: int = 97
    pcie_kib: int = 200_000
    time: float = 1_000.0
    gpu: FakeGpu = field(default_factory=FakeGpu)
    tensors: list[PagedState] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    sampler: TelemetrySampler | None = None

    def sample(self) -> TelemetrySnapshot:
        assert self.sampler is not None
        own = self.reserved + CONTEXT
        room = TOTAL - own - self.other - BASELINE - GIB // 4  # the driver keeps a little free
        resident = max(min(self.paged, room), 0)
        self.gpu.memory_used = own + self.other + BASELINE + resident
        self.gpu.processes = [(os.getpid(), own), (OTHER_PID, self.other)]
        self.gpu.utilization, self.gpu.pcie_rx_kib = self.utilisation, self.pcie_kib
        self.tensors[:] = [PagedState(1) for _ in range(self.paged // GIB)]
        self.stats["reserved_bytes.all.current"] = self.reserved
        self.stats["allocated_bytes.all.current"] = self.reserved - 3 * GIB
        snapshot = self.sampler.sample_once()
        self.time += 1.0  # one sample a second, whatever the wall clock did
        # The other job's owner, as psutil would name it on a shared server.
        (gpu,) = snapshot.gpus
        processes = tuple(
            replace(item, user="bob", command="python finetune_70b.py")
            if item.pid == OTHER_PID
            else item
            for item in gpu.processes or ()
        )
        return replace(snapshot, time=self.time, gpus=(replace(gpu, processes=processes),))

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        torch = ModuleType("torch")
        torch.cuda = SimpleNamespace(  # type: ignore[attr-defined]
            is_available=lambda: True,
            is_initialized=lambda: True,
            device_count=lambda: 1,
            memory_stats=lambda index: self.stats,
            get_device_properties=lambda index: SimpleNamespace(uuid=self.gpu.uuid[4:]),
        )
        monkeypatch.setitem(sys.modules, "torch", torch)
        functional = ModuleType("bitsandbytes.functional")
        manager = SimpleNamespace(paged_tensors=self.tensors)
        functional.GlobalPageManager = type("GlobalPageManager", (), {"_instance": manager})  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "bitsandbytes.functional", functional)
        self.sampler = TelemetrySampler(nvml_module=FakeNvml([self.gpu]))


@contextmanager
def scripted_run() -> Iterator[ScriptedRun]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        run = ScriptedRun()
        run.install(monkeypatch)
        yield run


def record(monitor: RunMonitor, snapshot: TelemetrySnapshot) -> None:
    monitor.record(TelemetryEvent(snapshot=snapshot.to_dict()))


def paged_spill_scenario(
    monitor: RunMonitor, run: ScriptedRun, seconds: range = range(150)
) -> None:
    """A QLoRA run, one sample a second: the model loads (0-20 s), the optimizer pages 6 GiB
    of state (20 s), reserved memory creeps up until free memory runs low (75 s) and paged
    state spills to the host (82 s), until the allocator's cache is emptied (120 s)."""
    monitor.record(StateChanged(RunState.RUNNING, "training for 400 steps"))
    for second in seconds:
        run.paged = 6 * GIB if second >= 20 else 0
        run.reserved = min(20 * GIB + second * GIB // 2, 62 * GIB)
        if second >= 120:
            run.reserved = 48 * GIB
        spilling = 82 <= second < 120
        run.pcie_kib = 9_000_000 + (second % 5) * 400_000 if spilling else 150_000
        run.utilisation = 60 + second % 9 if spilling else 96 + second % 4
        step = second * 2 + 1
        monitor.record(
            StepMetrics(
                step=step,
                max_steps=400,
                epoch=step / 100,
                loss=0.6 + 1.4 * math.exp(-step / 60) + 0.04 * math.sin(step),
                learning_rate=2e-4 * min(step / 20, 1.0),
                tokens_per_second=(2_100.0 if spilling else 5_400.0) + 37 * (second % 3),
                elapsed_seconds=float(second),
                eta_seconds=(400 - step) * 0.5,
            )
        )
        record(monitor, run.sample())


# -------------------------------------------------------------------- the monitor


def test_series_gauges_and_warning_episodes() -> None:
    monitor = RunMonitor()
    with scripted_run() as run:
        record(monitor, run.sample())  # before paging: the residency baseline
        view = monitor.memory_view()
        assert set(view.series) == {MEMORY_USED, MEMORY_RESERVED, MEMORY_ALLOCATED}
        assert view.limit_bytes == TOTAL and view.gpu_index == 0
        assert view.utilisation == [97.0] and view.pcie == [200_000 * 1024]
        assert monitor.take_new_warnings() == ()

        run.paged = 6 * GIB  # the optimizer pages its state in: all of it fits
        record(monitor, run.sample())
        view = monitor.memory_view()
        assert view.series[MEMORY_PAGED][-1][1] == 6 * GIB
        assert view.series[MEMORY_SPILLED][-1][1] == 0
        assert [x for x, _ in view.series[MEMORY_USED]] == [0.0, 1.0]  # seconds

        # Reserved memory creeps up: free memory falls under the threshold (5 % of 80 GiB)
        # and the driver starts moving paged state to the host.
        threshold = low_free_threshold(TOTAL)
        assert threshold == 4 * GIB
        run.reserved = 63 * GIB
        snapshot = run.sample()
        record(monitor, snapshot)
        assert snapshot.gpus[0].memory_free_bytes < threshold
        spilled = monitor.memory_view().series[MEMORY_SPILLED][-1][1]
        assert spilled == 2 * GIB
        new = monitor.take_new_warnings()
        assert [item.kind for item in new] == [LOW_GPU_MEMORY, PAGED_SPILL]
        assert "spilling" in new[1].message and "~2.0 GiB" in new[1].summary

        # The same episodes go on: nothing new to tell, the panel still shows both.
        run.reserved = 64 * GIB
        record(monitor, run.sample())
        assert monitor.take_new_warnings() == ()
        assert len(monitor.memory_view().warnings) == 2

        # Just above the threshold is not yet recovered (no flapping at the edge) ...
        run.reserved, run.paged = 62 * GIB + 3 * GIB // 4, 0  # 4.5 GiB free
        record(monitor, run.sample())
        assert [item.kind for item in monitor.memory_view().warnings] == [LOW_GPU_MEMORY]
        # ... well above it is, and a new dip is a new episode, told again.
        run.reserved = 40 * GIB
        record(monitor, run.sample())
        assert monitor.memory_view().warnings == ()
        run.reserved = 64 * GIB
        record(monitor, run.sample())
        (again,) = monitor.take_new_warnings()
        assert again.kind == LOW_GPU_MEMORY and again.episode == 3
    assert monitor.view().warnings == monitor.memory_view().warnings


def test_spill_warning_ignores_estimate_noise() -> None:
    """A spill estimate under SPILL_NOISE_BYTES is noise in NVML's numbers: no warning. One
    that rises past it starts an episode that lasts, falling or not, until pages are back."""
    monitor = RunMonitor()

    def spill_warnings() -> list[int]:
        return [w.episode for w in monitor.memory_view().warnings if w.kind == PAGED_SPILL]

    with scripted_run() as run:
        run.reserved = 50 * GIB
        record(monitor, run.sample())
        run.paged = 2 * GIB
        run.other = TOTAL - 51 * GIB - 2 * GIB + 32 * 1024**2  # 32 MiB of it does not fit
        record(monitor, run.sample())
        assert monitor.memory_view().series[MEMORY_SPILLED][-1][1] == 32 * 1024**2
        assert spill_warnings() == []
        run.other += GIB  # another job grows: over 1 GiB of paged state moves out
        record(monitor, run.sample())
        assert spill_warnings() == [2]  # (episode 1 is the low-memory warning)
        run.other -= GIB // 2  # some of it comes back, the rest is still on the host
        record(monitor, run.sample())
        assert spill_warnings() == [2]
        run.other -= GIB
        record(monitor, run.sample())
        assert spill_warnings() == []


def test_the_panel_follows_the_gpu_the_run_uses() -> None:
    from studio.telemetry.snapshots import GpuSnapshot, TorchMemory

    gpus = tuple(
        GpuSnapshot(index=i, memory_used_bytes=GIB, memory_total_bytes=TOTAL, memory_free_bytes=0)
        for i in (0, 1)
    )
    monitor = RunMonitor()
    record(monitor, TelemetrySnapshot(time=1.0, gpus=gpus))
    assert monitor.memory_view().gpu_index == 0  # nothing loaded yet: the first GPU
    # torch sees both (CUDA_VISIBLE_DEVICES unset) but holds memory only on GPU1.
    torch_memory = (
        TorchMemory(cuda_index=0, gpu_index=0, allocated_bytes=0, reserved_bytes=0),
        TorchMemory(cuda_index=1, gpu_index=1, allocated_bytes=GIB, reserved_bytes=2 * GIB),
    )
    for second in (2.0, 3.0):
        record(monitor, TelemetrySnapshot(time=second, gpus=gpus, torch_memory=torch_memory))
    view = monitor.memory_view()
    assert view.gpu_index == 1
    assert view.series[MEMORY_RESERVED] == [(1.0, 2 * GIB), (2.0, 2 * GIB)]  # started afresh
    assert len(view.series[MEMORY_USED]) == 2


def test_host_only_telemetry_gives_the_host_series() -> None:
    sampler = TelemetrySampler(nvml_module=FakeNvml([], init_error=RuntimeError("no driver")))
    monitor = RunMonitor()
    for _ in range(2):
        record(monitor, sampler.sample_once())
    view = monitor.memory_view()
    assert view.gpu_index is None
    assert set(view.series) == {MEMORY_RAM_USED, MEMORY_RSS}
    assert view.limit_bytes and view.limit_bytes > 0
    assert view.utilisation  # CPU %, from the second sample on
    assert view.pcie == [] and view.warnings == ()


def test_texts() -> None:
    assert bars([0, 50, 100], 5, 100) == "  ▁▅█"
    assert bars(list(range(100)), 3, 100) == "███"
    assert fit(["GPU0", "1.0 of 80.0 GiB free", "H100"], 27) == "GPU0 · 1.0 of 80.0 GiB free"
    assert fit(["GPU0", "1.0 of 80.0 GiB free", "H100"], 40).endswith("free · H100")
    assert fit(["no GPU", "23.4 of 31.0 GiB RAM free"], 10) == "no GPU"
    assert nonzero_runs([(0, 0), (1, 0), (2, 5), (3, 6), (4, 0), (5, 0), (6, 2)]) == [
        [(1, 0), (2, 5), (3, 6), (4, 0)],
        [(5, 0), (6, 2)],
    ]
    assert nonzero_runs([(0, 0), (1, 0)]) == []
    assert rate(1.2e9) == "1.2 GB/s" and rate(340e6) == "340 MB/s" and rate(12) == "12 B/s"
    assert [clock(s) for s in (0, 45, 120, 150, 3600, 3900)] == [
        "0s",
        "45s",
        "2m",
        "2m30",
        "1h",
        "1h05",
    ]
    assert time_ticks(0, 149, 4) == [0, 30, 60, 90, 120]
    assert time_ticks(0, 99, 2) == [0, 60]
    assert time_ticks(3, 9, 4) == [4, 6, 8]
    from studio.telemetry.snapshots import GpuProcess, GpuSnapshot

    gpu = GpuSnapshot(
        index=0,
        processes=(
            GpuProcess(1, 2 * GIB, "me", "python -m studio"),
            GpuProcess(2, 12 * GIB, "bob", "/usr/bin/python3 train.py"),
            GpuProcess(3, GIB, None, None),
        ),
    )
    text = others_text(gpu, own_pid=1)
    assert text is not None
    assert text.plain == "2 other processes, 13.0 GiB · biggest: bob 12.0 GiB (python3)"
    alone = GpuSnapshot(index=0, processes=gpu.processes[:2])
    assert str(others_text(alone, own_pid=1)) == "1 other process: bob 12.0 GiB (python3)"
    assert others_text(GpuSnapshot(index=0, processes=()), own_pid=1) is None


# -------------------------------------------------------------------- the panel in the app


def panel_text(app, selector: str) -> str:  # type: ignore[no-untyped-def]
    line = app.screen.query_one(selector, Static)
    return "" if line.has_class("-empty") else str(line.render())


@pytest.mark.slow
def test_panel_in_the_train_screen(tmp_path: Path) -> None:
    asyncio.run(panel_in_the_train_screen(tmp_path))


async def panel_in_the_train_screen(tmp_path: Path) -> None:
    app = make_app(isolated_services(tmp_path))
    notices: list[str] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await settle(pilot)
        panel = app.screen.query_one(MemoryPanel)
        # In its grid cell at 80x24: the right half, under the loss plot.
        assert panel.size.width == 40 and panel.size.height >= 8
        assert panel_text(app, "#memory-title") == "memory"
        app.notify = lambda message, **_: notices.append(message)  # type: ignore[method-assign]

        monitor = RunMonitor()
        app.runs.monitor = monitor
        with scripted_run() as run:
            # Up to 90 s: free memory is low and paged state spills.
            paged_spill_scenario(monitor, run, range(90))
            app.runs.changed.publish(monitor)
            await settle(pilot)
            plot = app.screen.query_one(MemoryPlot)
            assert list(plot.series) == [
                MEMORY_USED,
                MEMORY_RESERVED,
                MEMORY_ALLOCATED,
                MEMORY_PAGED,
                MEMORY_SPILLED,
            ]
            assert plot.limit_bytes == TOTAL
            assert plot.size.height >= 4  # the plot keeps rows under the warnings
            title = panel_text(app, "#memory-title")
            assert title == "GPU0 · 0.2 of 80.0 GiB free"  # the name when there is room
            legend = panel_text(app, "#memory-legend")
            assert "━ used" in legend and "━ spill" in legend
            gauges = panel_text(app, "#memory-gauges")
            assert gauges.startswith("util ") and "PCIe" in gauges
            others = panel_text(app, "#memory-others")
            assert others == "1 other process: bob 12.0 GiB (python)"
            # Two warnings share one line at 80x24 (the plot keeps its rows).
            warning = panel_text(app, "#memory-warning")
            assert warning == "⚠ low memory · spilling ~1.0 GiB"
            assert len(notices) == 2 and "spilling" in notices[1]

            # The episodes go on: shown, not told again.
            paged_spill_scenario(monitor, run, range(90, 110))
            app.runs.changed.publish(monitor)
            await settle(pilot)
            assert "spilling" in panel_text(app, "#memory-warning")
            assert len(notices) == 2
            # A taller panel gives each warning its own line.
            await pilot.resize_terminal(120, 40)
            await settle(pilot)
            assert panel_text(app, "#memory-warning").splitlines() == [
                "⚠ low memory: 0.2 GiB free, under 4.0",
                "⚠ paged optimizer spilling: ~1.0 GiB on the host",
            ]
            await pilot.resize_terminal(80, 24)

            # The allocator's cache is emptied: both clear.
            paged_spill_scenario(monitor, run, range(110, 130))
            app.runs.changed.publish(monitor)
            await settle(pilot)
            assert panel_text(app, "#memory-warning") == ""
            assert "13.2 of 80.0 GiB free" in panel_text(app, "#memory-title")

            # Memory runs low again: a new episode, told once more.
            paged_spill_scenario(monitor, run, range(75, 80))
            app.runs.changed.publish(monitor)
            await settle(pilot)
            assert panel_text(app, "#memory-warning") == "⚠ low memory: 1.8 GiB free, under 4.0"
            assert len(notices) == 3 and notices[2].startswith("GPU0 has 1.8 GiB free")
        assert panel.size.width == 40


@pytest.mark.slow
def test_host_view_on_this_machine(tmp_path: Path) -> None:
    asyncio.run(host_view_on_this_machine(tmp_path))


async def host_view_on_this_machine(tmp_path: Path) -> None:
    sampler = TelemetrySampler()  # the real one: real NVML if there is a GPU here
    monitor = RunMonitor()
    for _ in range(3):
        record(monitor, sampler.sample_once())
    sampler.close()
    app = make_app(isolated_services(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await settle(pilot)
        app.runs.monitor = monitor
        app.runs.changed.publish(monitor)
        await settle(pilot)
        title = panel_text(app, "#memory-title")
        if monitor.memory_view().gpu_index is not None:
            assert title.startswith("GPU")
            return
        assert title.startswith("no GPU — showing host memory")  # and free RAM if it fits
        legend = panel_text(app, "#memory-legend")
        assert "━ RAM" in legend and "━ RSS" in legend
        assert panel_text(app, "#memory-gauges").startswith("CPU ")
        assert panel_text(app, "#memory-warning") == ""
        assert set(app.screen.query_one(MemoryPlot).series) == {MEMORY_RAM_USED, MEMORY_RSS}


# -------------------------------------------------------------------- the docs' screenshot


async def save_screenshot(path: Path, size: tuple[int, int] = (120, 36)) -> None:
    """The Train screen 100 s into the paged-spill scenario (docs/memory-panel-scripted.svg)."""
    import tempfile

    app = make_app(isolated_services(Path(tempfile.mkdtemp()), theme="ftstudio-dark"))
    async with app.run_test(size=size) as pilot:
        await pilot.press("3")
        await settle(pilot)
        monitor = RunMonitor()
        with scripted_run() as run:
            paged_spill_scenario(monitor, run, range(100))
        app.runs.monitor = monitor
        app.runs.changed.publish(monitor)
        await settle(pilot)
        app.save_screenshot(filename=path.name, path=str(path.parent))


if __name__ == "__main__":  # python -m tests.ui.test_ui_memory_panel docs/memory-panel-scripted.svg
    asyncio.run(save_screenshot(Path(sys.argv[1])))
