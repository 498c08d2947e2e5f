"""What a new user tripped on, through the real app and its keys: each test names the bug of
issue 15 it keeps fixed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.widgets import Button, Input, RadioButton

from studio.config import load_config
from studio.engine.session import TrainingSession
from studio.ui.app import make_app
from studio.ui.screens.dialogs import ConfirmScreen
from studio.ui.screens.keys import KeysScreen
from studio.ui.widgets.config_form import editor_id
from tests.conftest import REPO, SAMPLE_DATA
from tests.support.pilot import collect_notes
from tests.support.ui import isolated_services, settle

QUICKSTART = SAMPLE_DATA / "configs" / "quickstart.yaml"
SIZE = (80, 24)


def run(coroutine) -> None:
    asyncio.run(coroutine)


def tiny_config(runs: Path, name: str, *extra: str):
    return load_config(
        QUICKSTART,
        [
            f"output.runs_dir={runs}",
            f"output.run_name={name}",
            "training.max_steps=2",
            "training.logging_steps=1",
            "training.batch_size=2",
            "data.max_length=64",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> Path:
    """Two finished two-step runs with no eval split."""
    runs = tmp_path_factory.mktemp("daily-use") / "runs"
    for name in ("first", "second"):
        TrainingSession(tiny_config(runs, name), base_dir=REPO, telemetry_interval=None).run()
    return runs


@contextlib.asynccontextmanager
async def runs_screen(runs: Path, tmp_path: Path, notes: list[str]) -> AsyncIterator[tuple]:
    """The app on its Runs screen listing `runs`, every toast's text collected in `notes`."""
    app = make_app(isolated_services(tmp_path))
    app.studio.config = tiny_config(runs, "unused")
    async with app.run_test(size=SIZE, message_hook=collect_notes(notes)) as pilot:
        await pilot.press("5")
        await settle(pilot)
        yield app, pilot


def test_bug1_added_models_are_listed_after_a_restart(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    services = isolated_services(tmp_path)
    services.settings_file.write_text(f"added_models:\n  - {folder}\n", encoding="utf-8")

    async def scenario() -> None:
        app = make_app(services)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            sources = [entry.source for entry in app.screen.entries]
            assert str(folder) in sources

    run(scenario())


@pytest.mark.slow
def test_bug2_esc_leaves_the_models_add_field_and_the_runs_filter(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("a")
            assert isinstance(app.focused, Input)
            await pilot.press("escape", "2")
            await settle(pilot)
            assert app.current_mode == "config"
            await pilot.press("escape", "5")
            await settle(pilot)
            await pilot.press("slash", "x", "escape")
            search = app.screen.query_one("#runs-search", Input)
            assert not search.has_focus and search.value == ""
            await pilot.press("1")
            await settle(pilot)
            assert app.current_mode == "models"
            assert search.value == ""

    run(scenario())


def test_bug4_models_suggests_the_current_hub_command(tmp_path: Path) -> None:
    from studio.ui.models.catalog import ModelEntry, describe_model

    note = describe_model(ModelEntry("org/some-model", "hub")).note or ""
    assert "`hf download org/some-model`" in note and "huggingface-cli" not in note


@pytest.mark.slow
def test_bug5_delete_asks_with_the_safe_answer_focused(two_runs: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        app.studio.config = tiny_config(two_runs, "unused")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("5")
            await settle(pilot)
            count = len(app.screen.table.runs)
            await pilot.press("d")
            await settle(pilot)
            assert isinstance(app.screen, ConfirmScreen)
            focused = app.focused
            assert isinstance(focused, Button) and focused.id == "no"
            await pilot.press("enter")
            await settle(pilot)
            assert len(app.screen.table.runs) == count  # enter kept it

    run(scenario())


@pytest.mark.slow
def test_bug6_a_loaded_value_puts_the_cursor_at_its_end(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        async with app.run_test(size=(100, 40)) as pilot:
            await settle(pilot)
            await pilot.press("2")
            await settle(pilot)
            field = app.screen.query_one(f"#{editor_id('training.learning_rate')}", Input)
            field.focus()
            await pilot.press("end", "ctrl+u", *"1e-3")
            await pilot.press("ctrl+o")
            await pilot.pause()
            path = app.screen.query_one("#path", Input)
            path.focus()
            await pilot.press("end", "ctrl+u", *"sample_data/configs/quickstart.yaml", "enter")
            await settle(pilot)
            assert field.value == "0.003"
            field.focus()
            await pilot.press("ctrl+u", *"1e-3")
            await settle(pilot)
            assert field.value == "1e-3"
            assert app.studio.config.training.learning_rate == 0.001

    run(scenario())


@pytest.mark.slow
def test_bug8_question_mark_and_f1_toggle_the_keys_overlay(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("5")
            await settle(pilot)
            await pilot.press("question_mark")
            await settle(pilot)
            assert isinstance(app.screen, KeysScreen)
            listed = dict(app.screen.rows)
            # Keys the footer has no room for are in the overlay.
            assert {"Filter", "Attach", "Out-of-memory triage"} <= set(listed.values())
            await pilot.press("escape")
            await settle(pilot)
            assert not isinstance(app.screen, KeysScreen)
            await pilot.press("f1")
            await settle(pilot)
            assert isinstance(app.screen, KeysScreen)
            await pilot.press("f1")
            await settle(pilot)
            assert app.current_mode == "runs" and not isinstance(app.screen, KeysScreen)
            assert not app.screen.query("HelpPanel")

    run(scenario())


@pytest.mark.slow
def test_bug9_compare_says_when_no_run_has_eval_loss(two_runs: Path, tmp_path: Path) -> None:
    from studio.ui.screens.runs_detail import CompareScreen

    notes: list[str] = []

    async def scenario() -> None:
        async with runs_screen(two_runs, tmp_path, notes) as (app, pilot):
            await pilot.press("space", "down", "c")
            await settle(pilot)
            assert isinstance(app.screen, CompareScreen)
            await pilot.press("v")
            await settle(pilot)
            assert app.screen.show_eval is False
            assert any("eval" in note and "eval_fraction" in note for note in notes)

    run(scenario())


@pytest.mark.slow
def test_bug14_export_toast_names_what_was_exported(two_runs: Path, tmp_path: Path) -> None:
    from studio.ui.screens.runs_dialogs import ExportScreen

    notes: list[str] = []

    async def scenario() -> None:
        async with runs_screen(two_runs, tmp_path, notes) as (app, pilot):
            await pilot.press("e")
            await settle(pilot)
            assert isinstance(app.screen, ExportScreen)
            app.screen.query_one("#merged", RadioButton).value = True
            await pilot.pause()
            target = app.screen.query_one("#export-target", Input)
            target.value = str(tmp_path / "exported")
            target.focus()
            await pilot.press("enter")
            await settle(pilot)
            done = [note for note in notes if note.startswith("exported")]
            assert done and done[-1].startswith("exported the merged model to "), notes

    run(scenario())


@pytest.mark.slow
def test_bug3_bug12_bug13_a_run_in_the_studio_ends_at_its_last_step(tmp_path: Path) -> None:
    """max_steps 3 with logging every 2: the toast, the Train line and Runs say 3/3; the
    Train screen's time is the Runs screen's; the learning-rate axis reads 1e-3, unscaled."""
    from studio.formatting import format_duration
    from studio.runs import read_run
    from studio.ui.widgets.metric_plot import MetricPlot

    notes: list[str] = []
    runs = tmp_path / "runs"

    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        app.studio.config = tiny_config(
            runs,
            "ends",
            "training.max_steps=3",
            "training.logging_steps=2",
            "training.learning_rate=0.001",
            "training.scheduler=constant",
            "training.warmup_ratio=0",
        )
        async with app.run_test(size=(120, 36), message_hook=collect_notes(notes)) as pilot:
            await pilot.press("3")
            await settle(pilot)
            await pilot.press("s")
            await settle(pilot)
            assert any(note.startswith("run finished after 3 steps") for note in notes), notes
            summary = read_run(runs / "ends")
            assert (summary.step, summary.max_steps) == (3, 3)
            stats = str(app.screen.query_one("#train-stats").render())
            assert "step 3/3" in stats
            assert f"took {format_duration(summary.duration_seconds)}" in stats, stats
            # Watch the model learn: the sample prompts' answers beside the plots.
            samples = app.screen.query_one("#train-samples")
            assert not samples.has_class("hidden")
            assert "samples at step 3" in str(samples.render())
            assert (runs / "ends" / "samples.jsonl").is_file()
            plot = app.screen.query_one("#lr-plot", MetricPlot)
            drawn = "\n".join(strip.text for strip in plot.render_lines(plot.region.reset_offset))
            assert "1e-3" in drawn and "×" not in drawn, drawn
            await pilot.press("5")
            await settle(pilot)
            row = app.screen.table.get_row(str(runs / "ends"))
            assert format_duration(summary.duration_seconds) in [str(cell) for cell in row]

    run(scenario())


@pytest.mark.slow
def test_bug11_the_train_log_rewraps_when_the_terminal_narrows(tmp_path: Path) -> None:
    from studio.ui.widgets.wrapping_log import WrappingLog

    line = " ".join(f"word{index:03d}" for index in range(30))  # 239 characters

    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("3")
            await settle(pilot)
            log = app.screen.query_one("#train-log", WrappingLog)
            log.add_line(line)
            await pilot.pause()
            await pilot.resize_terminal(80, 24)
            await settle(pilot)
            width = log.scrollable_content_region.width
            texts = [strip.text.rstrip() for strip in log.lines]
            assert all(len(text) <= width for text in texts), (width, texts)
            assert " ".join(" ".join(texts).split()) == line  # every word, none cut

    run(scenario())


def test_bug12_value_ticks_are_evenly_spaced_and_round() -> None:
    from studio.ui.widgets.metric_plot import tick_labels, value_ticks

    ticks = value_ticks(4.2, 10.5, 5)
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(gaps) == 1 and ticks[0] >= 4.2 and ticks[-1] <= 10.5
    assert tick_labels(ticks) == ["6", "8", "10"]
    assert tick_labels(value_ticks(0.0, 1e-3, 3)) == ["0", "5e-4", "1e-3"]
    assert tick_labels(value_ticks(3.1, 3.4, 4)) == ["3.1", "3.2", "3.3", "3.4"]


@pytest.mark.slow
def test_footer_offers_only_the_keys_that_apply(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            await settle(pilot)
            actions = {active.binding.action for active in app.screen.active_bindings.values()}
            assert "start" in actions
            assert not actions & {"pause_or_resume", "stop", "save_now"}
            assert app.screen.check_action("pause_or_resume", ()) is False

    run(scenario())


def test_run_names_of_a_day_stay_apart_at_80_columns() -> None:
    from studio.ui.widgets.run_table import NAME_WIDTH, short_name

    names = ["tiny-demo-lora-sft-20261130-093012", "tiny-demo-lora-sft-20261130-101544"]
    shown = [short_name(name) for name in names]
    assert shown[0] != shown[1] and all(len(name) <= NAME_WIDTH for name in shown)
    assert shown[0].endswith("1130-093012") and shown[0].startswith("tiny-demo-lora")


@pytest.mark.slow
def test_plain_terminals_get_ascii(tmp_path: Path) -> None:
    from studio.ui.chrome import glyphs

    assert glyphs.plain_terminal({"TERM": "linux", "LANG": "en_US.UTF-8"})
    assert glyphs.plain_terminal({"TERM": "xterm", "FTSTUDIO_ASCII": "1"})
    assert not glyphs.plain_terminal({"TERM": "xterm", "LANG": "C"})
    assert not glyphs.plain_terminal({"TERM": "xterm-256color", "LANG": "en_US.UTF-8"})

    async def scenario() -> None:
        glyphs.set_plain(True)
        try:
            app = make_app(isolated_services(tmp_path))
            async with app.run_test(size=SIZE) as pilot:
                await settle(pilot)
                assert app.has_class("-ascii")
                pane = app.screen.query_one("#model-list-pane")
                assert pane.styles.border_top[0] == "ascii"
                await pilot.press("3")
                await settle(pilot)
                from studio.ui.screens.train import _bar

                assert set(_bar(0.5, 10)) == {"#", "."}
        finally:
            glyphs.set_plain(glyphs.plain_terminal())

    run(scenario())


def test_one_memory_estimate_in_models_and_the_run_log(tmp_path: Path) -> None:
    """Models shows the estimate the run will log, for the device the run will use (here:
    no GPU, so the CPU, said so), not a GPU figure that disagrees with the log."""
    import torch
    from rich.console import Console

    from studio.formatting import format_bytes
    from studio.methods.memory import estimate_run
    from studio.models.tiny import ensure_tiny_model
    from studio.ui.widgets.memory_estimate import MemoryEstimatePanel

    device = "cuda" if torch.cuda.is_available() else "cpu"

    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            panel = app.screen.query_one(MemoryEstimatePanel)
            console = Console(width=100, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
            console.print(panel.render())
            shown = console.export_text()
            config = app.studio.config
            expected = estimate_run(config, str(ensure_tiny_model()), device=device)
            assert format_bytes(expected.total) in shown, shown
            if device == "cpu":
                assert "no GPU found" in shown

    run(scenario())


@pytest.mark.slow
def test_slash_finds_a_config_field_by_name_or_meaning(tmp_path: Path) -> None:
    from studio.ui.screens.field_search import FieldSearchScreen

    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("2")
            await settle(pilot)
            await pilot.press("escape", "slash")
            await settle(pilot)
            assert isinstance(app.screen, FieldSearchScreen)
            await pilot.press(*"learning rate", "enter")
            await settle(pilot)
            assert app.focused is app.screen.query_one(
                f"#{editor_id('training.learning_rate')}", Input
            )
            await pilot.press("escape", "slash", *"save steps", "enter")
            await settle(pilot)
            focused = app.focused
            assert focused is not None and focused.id == editor_id("training.save_steps")

    run(scenario())
