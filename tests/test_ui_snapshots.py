"""Snapshot tests: every screen in two themes, at 80x24 and at 120x36.

Each SVG in tests/__snapshots__/ was looked at (as PNG) before it was accepted. What the
screens show is made deterministic: settings, themes and the hub cache live in a temporary
folder, the Train screen shows a scripted run (fixed steps, losses, GPU telemetry from a
scripted NVML), the Chat screen a fixed transcript, and no path, time or size of this machine.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from textual.pilot import Pilot

from studio.engine.events import (
    EvalMetrics,
    LogLine,
    RunState,
    StateChanged,
    StepMetrics,
    TelemetryEvent,
)
from studio.telemetry.snapshots import GpuSnapshot, HostSnapshot, TelemetrySnapshot, TorchMemory
from studio.ui.app import StudioApp, make_app
from studio.ui.run_monitor import RunMonitor
from studio.ui.testing import isolated_services, settle, stop_cursor_blink

SIZES = {"80x24": (80, 24), "120x36": (120, 36)}
THEMES = ("ftstudio-dark", "ftstudio-light")
GIB = 1024**3

# Plots redraw on a throttled timer, so whether a plot has drawn when the snapshot is taken
# depends on timing; under parallel load two of these differed. Until the screens can be told
# to draw now, they run only on request: python -m pytest -m snapshot tests/test_ui_snapshots.py
pytestmark = pytest.mark.snapshot


@pytest.fixture
def app_for(tmp_path: Path):
    def build(theme: str) -> StudioApp:
        return make_app(isolated_services(tmp_path, theme=theme))

    return build


def scripted_run(steps: int = 60, max_steps: int = 100) -> RunMonitor:
    """A run part way through: losses, learning rate, evals, GPU memory and a log."""
    monitor = RunMonitor()
    monitor.record(StateChanged(RunState.PREPARING, "run directory runs/demo", time=0.0))
    for text in (
        "file:   sample_data/alpaca_en.jsonl",
        "records: read 40, kept 40, dropped 0",
        "loading tiny-demo (tiny) on cuda as bfloat16",
        "method LoRA: trainable params: 149,504 || all params: 1,123,584",
    ):
        monitor.record(LogLine(text=text, time=0.0))
    monitor.record(StateChanged(RunState.RUNNING, f"training for {max_steps} steps", time=0.0))
    for step in range(1, steps + 1):
        loss = 0.3 + 2.7 * math.exp(-step / 18) + 0.05 * math.sin(step)
        rate = 3e-3 * 0.5 * (1 + math.cos(math.pi * step / max_steps))
        if step % 2 == 0 or step == 1:
            monitor.record(
                StepMetrics(
                    step=step,
                    max_steps=max_steps,
                    epoch=step / 5,
                    loss=loss,
                    learning_rate=rate,
                    tokens_per_second=1234.0,
                    elapsed_seconds=step * 0.5,
                    eta_seconds=(max_steps - step) * 0.5,
                    time=0.0,
                )
            )
        if step % 15 == 0:
            monitor.record(EvalMetrics(step=step, epoch=step / 5, loss=loss + 0.4, time=0.0))
            monitor.record(LogLine(text=f"eval loss {loss + 0.4:.4f} at step {step}", time=0.0))
        if step % 3 == 0:
            used = (6 + min(step, 20) * 0.2) * GIB
            snapshot = TelemetrySnapshot(
                time=0.0,
                host=HostSnapshot(ram_used_bytes=8 * GIB, ram_total_bytes=64 * GIB),
                gpus=(
                    GpuSnapshot(
                        index=0,
                        name="NVIDIA H100 80GB HBM3",
                        utilization_percent=97.0,
                        memory_used_bytes=int(used),
                        memory_total_bytes=80 * GIB,
                        memory_free_bytes=int(80 * GIB - used),
                    ),
                ),
                torch_memory=(
                    TorchMemory(
                        cuda_index=0,
                        gpu_index=0,
                        allocated_bytes=int(used - 1.5 * GIB),
                        reserved_bytes=int(used - 0.5 * GIB),
                    ),
                ),
            )
            monitor.record(TelemetryEvent(snapshot=snapshot.to_dict(), time=0.0))
    return monitor


async def show_scripted_run(pilot: Pilot) -> None:
    app = pilot.app
    await pilot.press("3")
    await settle(pilot)
    app.monitor = scripted_run()
    app.run_changed.publish(app.monitor)
    await pilot.pause(1.2)  # the plots redraw at most once a second
    await settle(pilot)


async def show_transcript(pilot: Pilot) -> None:
    from textual.widgets import Static

    from studio.ui.screens.chat import Turn, TurnView

    await pilot.press("4")
    await settle(pilot)
    screen = pilot.app.screen
    screen.query_one("#chat-model", Static).update("demo-run (final adapter)")
    screen.query_one("#chat-hint", Static).update("Loaded demo-run (final adapter) on cpu.")
    labels = {"adapter": "with adapter", "base": "base model (adapter off)"}
    first = TurnView(Turn(1, "What is the capital of Japan?"), ("adapter",), labels)
    second = TurnView(Turn(2, "What is the capital of France?"), ("base", "adapter"), labels)
    log = screen.query_one("#chat-log")
    await log.mount_all([first, second])
    first.show("adapter", "The capital of Japan is Tokyo.", finished=True)
    second.show("base", "heart heart tuning the the capital ? ?", finished=True)
    second.show("adapter", "The capital of France is Paris.", finished=True)
    screen.compare = True
    screen._show_compare()
    await settle(pilot)


async def on_screen(pilot: Pilot, key: str) -> None:
    await pilot.press(key)
    await settle(pilot)


SCREENS = {
    "models": lambda pilot: settle(pilot),
    "config": lambda pilot: on_screen(pilot, "2"),
    "train": show_scripted_run,
    "chat": show_transcript,
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("screen", SCREENS)
def test_screen(screen: str, theme: str, size: str, app_for, snap_compare) -> None:
    async def run_before(pilot: Pilot) -> None:
        await SCREENS[screen](pilot)
        stop_cursor_blink(pilot)
        await pilot.pause()

    assert snap_compare(app_for(theme), terminal_size=SIZES[size], run_before=run_before)


def test_config_dataset_tab(app_for, snap_compare) -> None:
    """The dataset preview: counts, dropped records with their lines, the chat template."""

    async def run_before(pilot: Pilot) -> None:
        await on_screen(pilot, "2")
        screen = pilot.app.screen
        screen.query_one("#field-data-path").value = "sample_data/bad/alpaca_with_errors.jsonl"
        await pilot.press("ctrl+t")
        await pilot.pause(0.6)  # the preview waits for typing to pause
        await settle(pilot)
        stop_cursor_blink(pilot)

    assert snap_compare(app_for("ftstudio-dark"), terminal_size=(120, 36), run_before=run_before)


def test_train_high_contrast(app_for, snap_compare) -> None:
    async def run_before(pilot: Pilot) -> None:
        await show_scripted_run(pilot)
        stop_cursor_blink(pilot)

    assert snap_compare(
        app_for("ftstudio-high-contrast"), terminal_size=(80, 24), run_before=run_before
    )


def test_run_error_dialog(app_for, snap_compare) -> None:
    """A failed run: what happened and what to try."""
    from studio.engine.events import RunError
    from studio.ui.messages import RunFailed

    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        await on_screen(pilot, "3")
        monitor = scripted_run(steps=10)
        error = RunError(
            kind="out_of_memory",
            message="out of memory: CUDA out of memory. Tried to allocate 2.00 GiB",
            advice=(
                "use QLoRA (method.name: qlora) to load the base model in 4 bits",
                "halve the batch: training.batch_size: 2 with "
                "training.gradient_accumulation: 2 keeps the effective batch",
                "turn on training.gradient_checkpointing: true (about 30% slower)",
            ),
            step=10,
            time=0.0,
        )
        monitor.record(error)
        monitor.record(StateChanged(RunState.FAILED, "after 10 steps", time=0.0))
        app.monitor = monitor
        app.post_message(RunFailed(error))
        app.run_changed.publish(monitor)
        await pilot.pause(1.2)
        await settle(pilot)

    assert snap_compare(app_for("ftstudio-dark"), terminal_size=(80, 24), run_before=run_before)
