"""The app shell: light start-up, screens by key, mouse and palette, settings, failures."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from studio.ui.app import make_app
from studio.ui.chrome.navigation import DESTINATIONS
from studio.ui.chrome.palette import SCREEN_ACTIONS
from studio.ui.runs.messages import RunProgress
from studio.ui.screens.dialogs import ErrorScreen
from tests.support.pilot import collect_notes
from tests.support.ui import REPO, isolated_services, settle


def run(coroutine) -> None:
    asyncio.run(coroutine)


@pytest.mark.slow
def test_importing_the_app_imports_no_torch() -> None:
    """The first screen must paint fast over SSH: torch and friends load later, on workers."""
    code = (
        "import sys, studio.ui.app, studio.ui.screens.models\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'trl', 'datasets', "
        "'textual_plotext', 'huggingface_hub') if m in sys.modules]\n"
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_number_keys_tabs_and_palette_switch_screens(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            for destination in DESTINATIONS[1:]:
                # In a text field digits are typed; escape leaves the field first (Chat
                # focuses its question box, so "5" from Chat needs it).
                await pilot.press("escape", destination.key)
                await pilot.pause()
                assert app.current_mode == destination.mode
            await pilot.click("#tab-models")  # the header's tabs take the mouse
            await pilot.pause()
            assert app.current_mode == "models"
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"Go to Train", "enter")
            await pilot.pause()
            assert app.current_mode == "train"
            await settle(pilot)

    run(scenario())


@pytest.mark.slow
def test_palette_offers_every_action(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        async with app.run_test() as pilot:
            await settle(pilot)
            titles = {command.title for command in app.get_system_commands(app.screen)}
            for destination in DESTINATIONS:
                assert f"Go to {destination.title}" in titles
            for _mode, _action, title, _help in SCREEN_ACTIONS:
                assert title in titles
            assert {"Theme: dark", "Theme: light", "Theme: high-contrast"} <= titles
            # Every screen action exists on its screen.
            for mode, action, _title, _help in SCREEN_ACTIONS:
                await app.switch_mode(mode)
                name = action.split("(")[0]
                assert hasattr(app.screen, f"action_{name}"), (mode, action)
            await settle(pilot)

    run(scenario())


@pytest.mark.slow
def test_theme_choice_is_remembered(tmp_path: Path) -> None:
    services = isolated_services(tmp_path)

    async def choose() -> None:
        app = make_app(services)
        async with app.run_test() as pilot:
            await settle(pilot)
            assert app.theme == "ftstudio-dark"
            app.theme = "ftstudio-light"
            await pilot.pause()

    async def reopen() -> None:
        app = make_app(services)
        async with app.run_test() as pilot:
            await settle(pilot)
            assert app.theme == "ftstudio-light"

    run(choose())
    assert "theme: ftstudio-light" in services.settings_file.read_text()
    run(reopen())


def test_settings_follow_xdg_config_home(tmp_path: Path, monkeypatch) -> None:
    from studio.user_settings import settings_path, user_themes_dir

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert settings_path() == tmp_path / "ftstudio" / "settings.yaml"
    assert user_themes_dir() == tmp_path / "ftstudio" / "themes"


@pytest.mark.slow
def test_broken_user_theme_falls_back_with_a_message(tmp_path: Path) -> None:
    services = isolated_services(tmp_path, theme="mine")
    services.user_themes_dir.mkdir(parents=True)
    (services.user_themes_dir / "mine.yaml").write_text("name: mine\nprimary: not-a-colour\n")
    notes: list[str] = []

    async def scenario() -> None:
        app = make_app(services)
        async with app.run_test(message_hook=collect_notes(notes)) as pilot:
            await settle(pilot)
            assert app.theme == "ftstudio-dark"

    run(scenario())
    assert any("mine.yaml: primary: 'not-a-colour' is not a colour" in note for note in notes)
    assert any("theme 'mine' is not available; using 'ftstudio-dark'" in note for note in notes)


def test_broken_settings_file_gives_defaults_and_a_message(tmp_path: Path) -> None:
    services = isolated_services(tmp_path)
    services.settings_file.write_text("theme: [unclosed\n")
    notes: list[str] = []

    async def scenario() -> None:
        app = make_app(services)
        async with app.run_test(message_hook=collect_notes(notes)) as pilot:
            await settle(pilot)
            assert app.theme == "ftstudio-dark"

    run(scenario())
    assert any("is not valid" in note and "using default settings" in note for note in notes)


@pytest.mark.slow
def test_progress_messages_coalesce_and_redraws_are_capped(tmp_path: Path, monkeypatch) -> None:
    """A flood of per-step messages costs a few redraws, not one per message."""
    from studio.ui.runs.monitor import RunMonitor
    from studio.ui.screens.train import TrainScreen

    one, other = RunMonitor(), RunMonitor()
    assert RunProgress(one).can_replace(RunProgress(one))
    assert not RunProgress(one).can_replace(RunProgress(other))  # another run's news stays
    draws: list[int] = []
    original = TrainScreen._draw_stats

    def counting(self) -> None:
        draws.append(1)
        original(self)

    monkeypatch.setattr(TrainScreen, "_draw_stats", counting)

    async def scenario() -> None:
        from studio.engine.events import RunState, StateChanged, StepMetrics

        app = make_app(isolated_services(tmp_path))
        async with app.run_test() as pilot:
            await pilot.press("3")
            await settle(pilot)
            app.runs.monitor = monitor = RunMonitor()
            monitor.record(StateChanged(RunState.RUNNING, "training"))
            draws.clear()
            handled = []
            for step in range(1, 1001):
                monitor.record(StepMetrics(step=step, max_steps=1000, epoch=0.0, loss=1.0,
                                           learning_rate=1e-4))  # fmt: skip
                handled.append(app.post_message(RunProgress(monitor)))
            await pilot.pause(1.2)
            assert all(handled)
            assert 1 <= len(draws) <= 4, len(draws)
            await settle(pilot)  # draws what the throttle still holds
            assert "1000/1000" in str(app.screen.query_one("#train-stats").render())

    run(scenario())


@pytest.mark.slow
def test_failed_run_shows_what_to_try(tmp_path: Path) -> None:
    """A run that fails (here: a dataset that does not exist) ends in advice, not a crash."""
    from studio.config import RunConfig

    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            config = RunConfig.model_validate(
                {"data": {"path": "no/such/file.jsonl"}, "output": {"runs_dir": str(tmp_path)}}
            )
            app.set_config(config)
            await pilot.press("3")
            await settle(pilot)
            await pilot.press("s")
            await settle(pilot, timeout=300)
            assert isinstance(app.screen, ErrorScreen)
            assert "no/such/file.jsonl" in app.screen.message
            assert app.screen.advice
            await pilot.press("escape")
            await pilot.pause(0.6)
            banner = app.screen.query_one("#run-error")
            assert not banner.has_class("hidden")
            assert "data" in str(banner.render())
            assert not app.screen.query_one("#start").disabled  # it can be started again

    run(scenario())


@pytest.mark.slow
@pytest.mark.parametrize("size", [(80, 24), (160, 50)])
def test_every_screen_fits(tmp_path: Path, size: tuple[int, int]) -> None:
    """Header, body and footer of every screen are on screen at 80x24 and when larger."""

    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        async with app.run_test(size=size) as pilot:
            for destination in DESTINATIONS:
                await pilot.press(destination.key)
                await settle(pilot)
                screen = app.screen
                header = screen.query_one("#studio-header")
                footer = screen.query_one("Footer")
                assert header.region.y == 0 and header.region.width == size[0]
                assert footer.region.bottom == size[1]

    run(scenario())
