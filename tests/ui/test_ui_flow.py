"""The whole studio flow through the real app, driven by keys like a user would.

Pick the tiny model, load the quickstart config (LoRA on the alpaca sample), pick the
dataset, train until the run finishes, open Chat, ask a training question and get the trained
answer; compare mode answers with the adapter switched off and gives a different reply.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widgets import Input, OptionList, Select

from studio.engine.events import RunState
from studio.ui.app import make_app
from studio.ui.widgets.config_form import editor_id
from tests.support.ui import isolated_services, settle

QUESTION = "What is the capital of France?"
TRAINED_ANSWER = "The capital of France is Paris."


async def type_into(pilot, field: Input, text: str) -> None:
    field.focus()
    await pilot.press("end", "ctrl+u", *text)


@pytest.mark.slow
def test_pick_train_and_chat(tmp_path: Path) -> None:
    asyncio.run(pick_train_and_chat(tmp_path))


async def pick_train_and_chat(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    app = make_app(isolated_services(tmp_path))
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)

        # 1 Models: the built-in tiny model, picked with enter.
        assert app.screen.query_one("#model-list", OptionList).has_focus
        await pilot.press("enter")
        assert app.studio.config.model.source == "tiny-demo"

        # 2 Config: load the quickstart YAML through the load dialog.
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("ctrl+o")
        await pilot.pause()
        await type_into(
            pilot, app.screen.query_one("#path", Input), "sample_data/configs/quickstart.yaml"
        )
        await pilot.press("enter")
        await settle(pilot)
        config_screen = app.screen
        assert app.studio.config_file == "sample_data/configs/quickstart.yaml"
        assert app.studio.config.training.learning_rate == 0.003

        # Runs go to a temporary folder: typed into the form's output.runs_dir field.
        await type_into(
            pilot, config_screen.query_one(f"#{editor_id('output.runs_dir')}"), str(runs)
        )
        await settle(pilot)
        assert app.studio.config.output.runs_dir == str(runs)
        assert app.studio.config_problem is None

        # The method is LoRA (from the quickstart), shown in the form's drop-down.
        method = config_screen.query_one(f"#{editor_id('method.name')}", Select)
        assert method.value == "lora"

        # Dataset tab: pick the English alpaca sample from the list.
        await pilot.press("ctrl+t")
        await pilot.pause()
        files = config_screen.query_one("#dataset-files", OptionList)
        files.focus()
        files.highlighted = [option.id for option in files.options].index(
            "sample_data/alpaca_en.jsonl"
        )
        await pilot.press("enter")
        await pilot.pause(0.6)
        await settle(pilot)
        assert app.studio.config.data.path == "sample_data/alpaca_en.jsonl"
        summary = str(config_screen.query_one("#dataset-summary").render())
        assert "kept 40" in summary

        # 3 Train: start and wait for the end.
        await pilot.press("escape", "3")
        await settle(pilot)
        await pilot.press("s")
        await pilot.pause(0.5)
        assert app.runs.training_active
        await settle(pilot, timeout=900)
        monitor = app.runs.monitor
        assert monitor is not None and monitor.state is RunState.FINISHED, monitor.view().error
        view = monitor.view()
        assert view.train_loss[-1][1] < 0.4 * view.train_loss[0][1]
        assert view.finished is not None and view.finished.adapter_dir
        assert Path(view.finished.adapter_dir).parent.parent == runs

        # 4 Chat: the finished run's adapter loads by itself; ask a training question.
        await pilot.press("4")
        await settle(pilot)
        chat = app.screen
        assert chat.chat is not None and chat.chat.has_adapter
        assert chat.query_one("#chat-input", Input).has_focus
        await pilot.press(*QUESTION, "enter")
        await settle(pilot)
        (turn,) = chat.turns.values()
        assert turn.turn.replies["adapter"] == TRAINED_ANSWER
        assert TRAINED_ANSWER in str(chat.query_one(f"#reply-{turn.turn.id}-adapter").render())

        # Compare mode: the base model (adapter off) answers the same question differently.
        await pilot.press("ctrl+b")
        assert chat.compare
        await pilot.press(*QUESTION, "enter")
        await settle(pilot)
        compared = list(chat.turns.values())[-1].turn.replies
        assert compared["adapter"] == TRAINED_ANSWER
        assert compared["base"] != TRAINED_ANSWER
        assert chat.chat.base_strategy == "disable_adapter"
