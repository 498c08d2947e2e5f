"""Snapshot tests: every screen in every theme, at 80x24 and at 120x36, and as a 16-colour
terminal and a NO_COLOR one show the default themes.

Each SVG in tests/ui/__snapshots__/ was looked at (as PNG) before it was accepted. What the
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
from studio.ui.runs.monitor import RunMonitor
from tests.support.ui import isolated_services, settle, stop_cursor_blink

SIZES = {"80x24": (80, 24), "120x36": (120, 36)}
THEMES = ("ftstudio-dark", "ftstudio-light", "ftstudio-high-contrast")
# (theme, terminal): the light and dark themes as a 16-colour terminal shows them, and the
# dark one with NO_COLOR set.
VARIANTS = (
    ("ftstudio-dark", "16-colours"),
    ("ftstudio-light", "16-colours"),
    ("ftstudio-dark", "no-color"),
)
GIB = 1024**3

# Select with -m snapshot; part of the full run, not of the fast lane (-m "not slow").
pytestmark = [pytest.mark.snapshot, pytest.mark.slow]


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch):
    """Dates on screen in UTC, whatever the machine's time zone."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture(autouse=True)
def unicode_glyphs():
    """The glyphs of a UTF-8 terminal, whatever TERM and locale the tests run under (a
    `TERM=linux` or `LANG=C` machine would draw ASCII: studio.ui.chrome.glyphs)."""
    from studio.ui.chrome import glyphs

    plain = glyphs.is_plain()
    glyphs.set_plain(False)
    yield
    glyphs.set_plain(plain)


@pytest.fixture
def cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Models screen's memory estimate is for the device a run would use: the CPU here,
    whatever the machine the snapshots are checked on."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


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
                time=step * 0.5,  # a sample every 1.5 s, as the steps' elapsed times say
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
            monitor.record(TelemetryEvent(snapshot=snapshot.to_dict(), time=step * 0.5))
    return monitor


async def show_scripted_run(pilot: Pilot) -> None:
    app = pilot.app
    await pilot.press("3")
    await settle(pilot)
    app.runs.monitor = scripted_run()
    app.runs.changed.publish(app.runs.monitor)
    await settle(pilot)  # settle draws the throttled stats and plots now


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


# (name, method, training type, status.json, adapter bytes, complete checkpoints)
SCRIPTED_RUNS = (
    (
        "tiny-demo-lora-sft-20261120-093012",
        "lora",
        "sft",
        {
            "state": "finished",
            "step": 150,
            "max_steps": 150,
            "loss": 0.0062,
            "best_loss": 0.0058,
            "final_loss": 0.0062,
            "duration_seconds": 25.4,
            "started": 1_795_167_012.0,
        },
        612_000,
        (100, 150),
    ),
    (
        "qwen2.5-7b-qlora-sft-20261121-141200",
        "qlora",
        "sft",
        {
            "state": "failed",
            "step": 40,
            "max_steps": 300,
            "loss": 1.93,
            "best_loss": 1.88,
            "duration_seconds": 312.0,
            "started": 1_795_270_320.0,
            "error": {
                "kind": "out_of_memory",
                "message": "CUDA out of memory. Tried to allocate 2.00 GiB",
            },
        },
        None,
        (25,),
    ),
    (
        "tiny-demo-lora-dpo-20261122-180502",
        "lora",
        "dpo",
        {
            "state": "stopped",
            "step": 60,
            "max_steps": 120,
            "loss": 0.41,
            "best_loss": 0.39,
            "duration_seconds": 48.0,
            "started": 1_795_370_702.0,
        },
        598_000,
        (50,),
    ),
)


def scripted_runs(workdir: Path) -> Path:
    """A runs folder with a finished, a failed (out of memory) and a stopped run."""
    import json

    import yaml

    runs = workdir / "runs"
    for name, method, training_type, status, adapter_bytes, checkpoints in SCRIPTED_RUNS:
        run = runs / name
        run.mkdir(parents=True)
        source = "Qwen/Qwen2.5-7B" if name.startswith("qwen") else "tiny-demo"
        config = {
            "model": {"source": source},
            "method": {"name": method},
            "training_type": training_type,
        }
        (run / "config.yaml").write_text(yaml.safe_dump(config))
        (run / "status.json").write_text(json.dumps(status))
        if adapter_bytes:
            (run / "adapter").mkdir()
            (run / "adapter" / "adapter_model.safetensors").write_bytes(b"0" * adapter_bytes)
        for step in checkpoints:
            folder = run / "checkpoints" / f"checkpoint-{step}"
            folder.mkdir(parents=True)
            (folder / "ftstudio_complete.json").write_text("{}")
    return runs


async def on_screen(pilot: Pilot, key: str) -> None:
    await pilot.press(key)
    await settle(pilot)


async def show_runs(pilot: Pilot) -> None:
    await on_screen(pilot, "5")


SCREENS = {
    "models": lambda pilot: settle(pilot),
    "config": lambda pilot: on_screen(pilot, "2"),
    "train": show_scripted_run,
    "chat": show_transcript,
    "runs": show_runs,
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("screen", SCREENS)
def test_screen(
    screen: str, theme: str, size: str, app_for, snap_compare, tmp_path: Path, utc, cpu_only
) -> None:
    async def run_before(pilot: Pilot) -> None:
        await SCREENS[screen](pilot)
        stop_cursor_blink(pilot)
        await pilot.pause()

    app = screen_app(screen, theme, tmp_path, app_for)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=run_before)


def screen_app(screen: str, theme: str, tmp_path: Path, app_for) -> StudioApp:
    if screen == "runs":
        # Its own working folder, so the list holds the scripted runs and nothing else.
        scripted_runs(tmp_path / "work")
        return make_app(isolated_services(tmp_path, theme=theme, workdir=tmp_path / "work"))
    return app_for(theme)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"{v[0]}-{v[1]}")
@pytest.mark.parametrize("screen", SCREENS)
def test_screen_in_few_colours(
    screen: str,
    variant: tuple[str, str],
    size: str,
    app_for,
    snap_compare,
    tmp_path: Path,
    utc,
    cpu_only,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Readable where colours are few: 16 of them, or none (NO_COLOR): the focused field,
    the buttons and the status stand out by more than a hue."""
    from tests.support.ui import SixteenColours

    theme, terminal = variant
    if terminal == "no-color":
        monkeypatch.setenv("NO_COLOR", "1")  # read (and removed) when the app is made

    async def run_before(pilot: Pilot) -> None:
        await SCREENS[screen](pilot)
        stop_cursor_blink(pilot)
        await pilot.pause()

    app = screen_app(screen, theme, tmp_path, app_for)
    if terminal == "16-colours":
        app._filters.append(SixteenColours())
    assert snap_compare(app, terminal_size=SIZES[size], run_before=run_before)


def test_config_dataset_tab(app_for, snap_compare) -> None:
    """The dataset preview: counts, dropped records with their lines, the chat template."""

    async def run_before(pilot: Pilot) -> None:
        await on_screen(pilot, "2")
        screen = pilot.app.screen
        screen.query_one("#field-data-path").value = "sample_data/bad/alpaca_with_errors.jsonl"
        await pilot.press("ctrl+t")
        await settle(pilot)  # settle starts the preview the form's debounce is holding back
        stop_cursor_blink(pilot)

    assert snap_compare(app_for("ftstudio-dark"), terminal_size=(120, 36), run_before=run_before)


def test_run_error_dialog(app_for, snap_compare) -> None:
    """A failed run: what happened and what to try."""
    from studio.engine.events import RunError
    from studio.ui.runs.messages import RunFailed

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
        app.runs.monitor = monitor
        app.post_message(RunFailed(monitor, error))
        app.runs.changed.publish(monitor)
        await settle(pilot)

    assert snap_compare(app_for("ftstudio-dark"), terminal_size=(80, 24), run_before=run_before)


def test_keys_overlay(tmp_path: Path, snap_compare, utc) -> None:
    """`?` on Runs: every key of the screen, those the footer has no room for too."""

    async def run_before(pilot: Pilot) -> None:
        await show_runs(pilot)
        await pilot.press("question_mark")
        await settle(pilot)

    scripted_runs(tmp_path / "work")
    app = make_app(isolated_services(tmp_path, theme="ftstudio-dark", workdir=tmp_path / "work"))
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
