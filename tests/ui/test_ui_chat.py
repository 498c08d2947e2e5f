"""The Chat screen with the base model alone: streaming, settings, stop, new chat."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widgets import Input

from studio.ui.app import make_app
from studio.ui.screens.chat import visible_text
from studio.ui.screens.dialogs import ErrorScreen
from studio.ui.widgets.config_form import editor_id
from tests.support.ui import isolated_services, settle


def test_model_output_cannot_drive_the_terminal() -> None:
    assert visible_text("a\x1b[2Jb\x01\tc\n") == "a␛[2Jb␁    c\n"


@pytest.mark.slow
def test_base_model_streams_and_stops(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            await pilot.press("4")
            await settle(pilot)
            screen = app.screen
            # Load through the dialog, as a user does: the base model is the first choice.
            await pilot.press("ctrl+l")
            await settle(pilot)
            await pilot.press("home", "enter")
            await settle(pilot)
            assert screen.chat is not None and not screen.chat.has_adapter
            # Back from the dialog, the keys go to the question box.
            assert screen.query_one("#chat-input", Input).has_focus
            # A long reply, stopped with escape while it streams.
            await pilot.press("ctrl+g")
            await pilot.pause()
            settings = screen.query_one("#chat-settings")
            for name, value in (("max_new_tokens", "1500"), ("temperature", "1"), ("seed", "3")):
                settings.query_one(f"#{editor_id(name)}", Input).focus()
                await pilot.press("end", "ctrl+u", *value)
            assert screen.settings.max_new_tokens == 1500
            assert screen.settings.temperature == 1.0 and screen.settings.seed == 3
            await pilot.press("ctrl+g")  # closes the panel, back to the question
            assert screen.query_one("#chat-input", Input).has_focus
            await pilot.press(*"Hello", "enter")
            for _ in range(100):
                await pilot.pause(0.05)
                turn = next(iter(screen.turns.values()))
                reply = str(turn.query_one(".reply ReplyText").render())
                if reply != "…":
                    break
            await pilot.press("escape")
            await settle(pilot)
            (turn,) = screen.turns.values()
            assert turn.turn.done
            assert "(stopped)" in str(turn.query_one(".reply ReplyText").render())
            assert len(screen.history) == 2
            # Compare needs an adapter; a new chat forgets the conversation.
            await pilot.press("ctrl+b")
            assert not screen.compare
            await pilot.press("ctrl+n")
            await settle(pilot)
            assert screen.history == [] and not screen.turns
            # A reply longer than the model's context fails with advice, not a crash.
            await pilot.press("ctrl+g")
            await pilot.pause()
            settings.query_one(f"#{editor_id('max_new_tokens')}", Input).focus()
            await pilot.press("end", "ctrl+u", *"4000", "ctrl+g", *"Hi", "enter")
            await settle(pilot)
            assert isinstance(app.screen, ErrorScreen), app.screen
            assert app.screen.error_title == "Chat failed"
            await pilot.press("escape")
            await settle(pilot)
            (turn,) = screen.turns.values()
            assert "(failed)" in str(turn.query_one(".reply ReplyText").render())
            assert screen.history == []

    asyncio.run(scenario())


def test_settings_panel_toggles_plain_completion() -> None:
    from textual.app import App, ComposeResult
    from textual.widgets import Checkbox

    from studio.ui.widgets.chat_settings import ChatSettingsPanel

    class PanelApp(App):
        def compose(self) -> ComposeResult:
            yield ChatSettingsPanel(id="panel")

    async def scenario() -> None:
        app = PanelApp()
        async with app.run_test(size=(60, 40)) as pilot:
            panel = app.query_one(ChatSettingsPanel)
            assert panel.settings.completion is False
            box = panel.query_one(f"#{editor_id('completion')}", Checkbox)
            box.value = True
            await pilot.pause()
            assert panel.settings.completion is True

    asyncio.run(scenario())
