"""The Config screen: a form generated from the config model, YAML save / load, validation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widgets import Input, Select

from studio.config import all_fields, load_config
from studio.ui.app import make_app
from studio.ui.screens.dialogs import ErrorScreen
from studio.ui.widgets.config_form import ConfigForm, editor_id
from tests.support.ui import isolated_services, settle


async def open_config(pilot) -> ConfigForm:
    await settle(pilot)
    await pilot.press("2")
    await settle(pilot)
    return pilot.app.screen.query_one(ConfigForm)


async def type_into(pilot, field: Input, text: str) -> None:
    field.focus()
    await pilot.press("end", "ctrl+u", *text)
    await pilot.pause()


@pytest.mark.slow
def test_form_has_every_field_and_only_the_chosen_methods(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        async with app.run_test(size=(100, 40)) as pilot:
            form = await open_config(pilot)
            for spec in all_fields("lora"):
                assert form.query(f"#{editor_id(spec.path)}"), spec.path
            assert not form.query(f"#{editor_id('method.quant_type')}")
            # Choosing QLoRA shows its fields and keeps the rank the user typed.
            await type_into(pilot, form.query_one(f"#{editor_id('method.rank')}", Input), "8")
            form.query_one(f"#{editor_id('method.name')}", Select).value = "qlora"
            await settle(pilot)
            for spec in all_fields("qlora"):
                assert form.query(f"#{editor_id(spec.path)}"), spec.path
            assert app.studio.config.method.name == "qlora"
            assert app.studio.config.method.rank == 8
            # Prefix tuning has no LoRA fields.
            form.query_one(f"#{editor_id('method.name')}", Select).value = "prefix_tuning"
            await settle(pilot)
            assert not form.query(f"#{editor_id('method.rank')}")
            assert form.query(f"#{editor_id('method.num_virtual_tokens')}")

    asyncio.run(scenario())


@pytest.mark.slow
def test_out_of_range_value_is_named_and_blocks_training(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        async with app.run_test(size=(100, 40)) as pilot:
            form = await open_config(pilot)
            field = form.query_one(f"#{editor_id('training.learning_rate')}", Input)
            await type_into(pilot, field, "5")
            assert "training.learning_rate = 5" in (app.studio.config_problem or "")
            status = str(app.screen.query_one("#config-status").render())
            assert status.startswith("✗") and "learning_rate" in status
            row = field.parent
            assert row is not None and row.has_class("-invalid")
            assert app.runs.start_training() is False  # a bad config never reaches the trainer
            await type_into(pilot, field, "0.0002")
            assert app.studio.config_problem is None
            assert app.studio.config.training.learning_rate == 0.0002
            assert row.has_class("-modified") and not row.has_class("-invalid")
            # The focused field's description, default and range are shown.
            help_text = str(app.screen.query_one("#field-help").render())
            assert "training.learning_rate" in help_text and "range 1e-06..0.01" in help_text

    asyncio.run(scenario())


@pytest.mark.slow
def test_save_load_and_command_line(tmp_path: Path) -> None:
    saved = tmp_path / "mine.yaml"

    async def scenario() -> None:
        app = make_app(isolated_services(tmp_path))
        async with app.run_test(size=(100, 40)) as pilot:
            form = await open_config(pilot)
            await type_into(pilot, form.query_one(f"#{editor_id('training.epochs')}", Input), "2")
            await pilot.press("ctrl+s")
            await pilot.pause()
            await type_into(pilot, app.screen.query_one("#path", Input), str(saved))
            await pilot.press("enter")
            await settle(pilot)
            assert load_config(saved).training.epochs == 2
            command = str(app.screen.query_one("#train-command").render())
            assert command == f"ftstudio train {saved}"
            await type_into(pilot, form.query_one(f"#{editor_id('training.seed')}", Input), "7")
            command = str(app.screen.query_one("#train-command").render())
            assert command == f"ftstudio train {saved} --set training.seed=7"
            # Loading the quickstart fills the form; a broken file explains itself.
            await pilot.press("ctrl+o")
            await pilot.pause()
            await type_into(
                pilot, app.screen.query_one("#path", Input), "sample_data/configs/quickstart.yaml"
            )
            await pilot.press("enter")
            await settle(pilot)
            assert form.query_one(f"#{editor_id('training.learning_rate')}", Input).value == "0.003"
            assert app.studio.config.training.batch_size == 8
            broken = tmp_path / "broken.yaml"
            broken.write_text("training:\n  learning_rate: 5\n")
            await pilot.press("ctrl+o")
            await pilot.pause()
            await type_into(pilot, app.screen.query_one("#path", Input), str(broken))
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, ErrorScreen)
            assert "training.learning_rate = 5" in app.screen.message

    asyncio.run(scenario())
