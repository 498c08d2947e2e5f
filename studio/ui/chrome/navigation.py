"""The studio's top-level screens, one entry each.

Everything that lists screens (App.MODES, the number keys, the header's tabs, the command
palette) is generated from `DESTINATIONS`, so adding a screen is one entry here:

    Destination("runs", "5", "Runs", "History of runs", "studio.ui.screens.runs:RunsScreen")

Screens are imported when first shown, so only the first screen's module loads at start-up.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual.binding import Binding
from textual.screen import Screen


@dataclass(frozen=True)
class Destination:
    mode: str
    key: str
    title: str
    description: str
    screen_path: str  # "package.module:ClassName", imported on first use

    def make_screen(self) -> Screen:
        module_name, _, class_name = self.screen_path.partition(":")
        return getattr(importlib.import_module(module_name), class_name)()


DESTINATIONS: tuple[Destination, ...] = (
    Destination(
        "models",
        "1",
        "Models",
        "Pick a base model and see what it needs in memory",
        "studio.ui.screens.models:ModelsScreen",
    ),
    Destination(
        "config",
        "2",
        "Config",
        "Build the run: method, dataset, hyperparameters; save and load YAML",
        "studio.ui.screens.config:ConfigScreen",
    ),
    Destination(
        "train",
        "3",
        "Train",
        "Start, pause and stop training; live loss, learning rate and memory",
        "studio.ui.screens.train:TrainScreen",
    ),
    Destination(
        "chat",
        "4",
        "Chat",
        "Talk to the trained model, compare it with the base model",
        "studio.ui.screens.chat:ChatScreen",
    ),
    Destination(
        "runs",
        "5",
        "Runs",
        "History of runs: open, compare, resume, triage, export, re-run, delete",
        "studio.ui.screens.runs:RunsScreen",
    ),
)


def modes() -> dict[str, str | Callable[[], Screen[Any]]]:
    return {destination.mode: destination.make_screen for destination in DESTINATIONS}


def navigation_bindings() -> list[Binding]:
    return [
        Binding(
            destination.key,
            f"app.show('{destination.mode}')",
            destination.title,
            show=False,
            tooltip=destination.description,
        )
        for destination in DESTINATIONS
    ]


def destination(mode: str) -> Destination:
    return next(item for item in DESTINATIONS if item.mode == mode)
