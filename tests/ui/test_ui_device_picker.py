"""The device picker on a scripted 3-GPU machine (fake NVML) in the real app: free memory and
the processes other users run on each GPU, what `auto` picks and why, ticking GPUs sets the
config's devices.gpus, and on a machine without GPUs the picker is not there at all."""

from __future__ import annotations

import asyncio
import getpass
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import SelectionList, Static

from studio.telemetry.fake_nvml import FakeGpu, FakeNvml
from studio.ui.app import make_app
from studio.ui.widgets.device_picker import DevicePicker
from tests.support.ui import isolated_services, settle

GIB = 1024**3


@pytest.fixture
def other_job() -> Iterator[subprocess.Popen[bytes]]:
    """A real process standing in for someone else's job on a GPU (NVML names it by pid)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait()


def shared_machine(other_pid: int) -> FakeNvml:
    return FakeNvml(
        [
            FakeGpu(memory_used=74 * GIB, utilization=98, processes=[(other_pid, 73 * GIB)]),
            FakeGpu(memory_used=30 * GIB, utilization=40, processes=[(other_pid, 29 * GIB)]),
            FakeGpu(memory_used=2 * GIB, utilization=0, processes=[]),
        ]
    )


def lines_of(picker: DevicePicker) -> list[str]:
    gpu_list = picker.query_one("#gpu-list", SelectionList)
    return [str(gpu_list.get_option_at_index(i).prompt) for i in range(gpu_list.option_count)]


@pytest.mark.slow
@pytest.mark.parametrize("screen_key", ["1", "3"])
def test_the_picker_shows_each_gpu_and_auto_picks_the_freest_that_fits(
    tmp_path: Path, other_job: subprocess.Popen[bytes], screen_key: str
) -> None:
    asyncio.run(picker_on_a_shared_machine(tmp_path, other_job.pid, screen_key))


async def picker_on_a_shared_machine(tmp_path: Path, other_pid: int, screen_key: str) -> None:
    services = isolated_services(tmp_path)
    services = type(services)(**{**services.__dict__, "nvml_module": shared_machine(other_pid)})
    app = make_app(services)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(screen_key)  # Models, then Train
        await settle(pilot)
        picker = app.screen.query_one(DevicePicker)
        assert picker.display and picker.has_class("-has-gpus")
        lines = lines_of(picker)
        assert len(lines) == 3
        assert lines[0].startswith("GPU0 6.0 GiB free, 98% busy, 1 other process (")
        user = getpass.getuser()
        assert f"{user}: " in lines[0] and "time.sleep(120)" in lines[0]
        assert lines[1].startswith("GPU1 50.0 GiB free, 40% busy, 1 other process")
        assert lines[2] == "GPU2 78.0 GiB free, 0% busy, no other processes"
        auto = str(picker.query_one("#device-auto", Static).render())
        assert auto.startswith("auto → auto: GPU2 78.0 GiB free")
        assert "the most free memory, and the run's ~" in auto and "fits" in auto
        assert picker.auto_choice is not None and picker.auto_choice.gpus == (2,)
        assert app.studio.config.devices.gpus == "auto"

        # Tick GPU1 and GPU0: the run is now a 2-GPU group on exactly those.
        gpu_list = picker.query_one("#gpu-list", SelectionList)
        gpu_list.select(1)
        await settle(pilot)
        assert app.studio.config.devices.gpus == "1"
        gpu_list.select(0)
        await settle(pilot)
        assert app.studio.config.devices.gpus == "0,1"
        gpu_list.deselect_all()
        await settle(pilot)
        assert app.studio.config.devices.gpus == "auto"


def test_without_a_gpu_the_picker_is_hidden(tmp_path: Path) -> None:
    asyncio.run(picker_without_gpus(tmp_path))


async def picker_without_gpus(tmp_path: Path) -> None:
    services = isolated_services(tmp_path)
    services = type(services)(**{**services.__dict__, "nvml_module": FakeNvml([])})
    app = make_app(services)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("1")
        await settle(pilot)
        picker = app.screen.query_one(DevicePicker)
        assert picker.snapshot is not None and not picker.snapshot.gpus
        assert not picker.has_class("-has-gpus") and picker.region.height == 0
