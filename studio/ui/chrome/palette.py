"""Command palette entries (ctrl+p) for every action of the studio, from any screen.

An action that belongs to a screen first shows that screen, then runs the screen's action,
so the palette works the same wherever it is opened.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from textual.app import SystemCommand
from textual.screen import Screen

from studio.ui.chrome.navigation import DESTINATIONS

if TYPE_CHECKING:
    from studio.ui.app import StudioApp

# (mode, screen action, title, help)
SCREEN_ACTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("models", "use_model", "Use the highlighted model", "Make it the base model of the run"),
    ("models", "add_model", "Add a model", "A local folder or a Hugging Face hub id"),
    ("models", "rescan", "Rescan models", "Look again in the Hugging Face cache and folders"),
    ("config", "load_config", "Load config", "Read a run config from a YAML file"),
    ("config", "save_config", "Save config", "Write the run config to a YAML file"),
    ("config", "reset_config", "Reset config", "Every field back to its default"),
    ("config", "copy_command", "Copy train command", "The `ftstudio train` line, to the clipboard"),
    ("config", "show_tab('dataset')", "Dataset preview", "Records as the model sees them"),
    ("train", "start", "Start training", "Train with the current config"),
    ("train", "pause_or_resume", "Pause / resume training", "At the end of the current step"),
    ("train", "stop", "Stop training", "Stop after this step and save the adapter"),
    ("train", "save_now", "Save checkpoint now", "Write a checkpoint at the end of this step"),
    ("chat", "choose_model", "Chat: load model", "A run's adapter, a checkpoint or the base"),
    ("chat", "toggle_compare", "Chat: compare with base", "Answer with and without the adapter"),
    ("chat", "stop_generation", "Chat: stop generating", "Stop the reply being written"),
    ("chat", "new_chat", "Chat: new conversation", "Forget the conversation so far"),
    ("chat", "toggle_settings", "Chat: settings", "System prompt, temperature, top-p, length"),
    ("runs", "open", "Runs: open run", "Config, loss curves and log of the highlighted run"),
    ("runs", "compare", "Runs: compare marked runs", "Overlay loss curves, diff the configs"),
    ("runs", "resume", "Runs: resume run", "Go on from the last checkpoint, shown on Train"),
    ("runs", "triage", "Runs: out-of-memory triage", "What would fit, relaunch with one change"),
    ("runs", "export", "Runs: export run", "The adapter with a model card, or a merged model"),
    ("runs", "rerun", "Runs: re-run with edited config", "An old run's config on Config"),
    ("runs", "attach", "Runs: attach to running run", "Follow a run another process trains"),
    ("runs", "delete", "Runs: delete run", "Remove a run's folder (asks first)"),
    ("runs", "refresh_runs", "Runs: refresh list", "Read the runs folder again"),
)


def studio_commands(app: StudioApp, screen: Screen) -> Iterable[SystemCommand]:
    for destination in DESTINATIONS:
        yield SystemCommand(
            f"Go to {destination.title}",
            f"{destination.description} (key {destination.key})",
            _show(app, destination.mode),
        )
    for mode, action, title, help_text in SCREEN_ACTIONS:
        yield SystemCommand(title, help_text, _on_screen(app, mode, action))
    for name in sorted(app.available_themes):
        if name.startswith("ftstudio-"):
            yield SystemCommand(
                f"Theme: {name.removeprefix('ftstudio-')}",
                "Switch to this theme (remembered)",
                _set_theme(app, name),
                discover=False,
            )


def _show(app: StudioApp, mode: str) -> Callable[[], Awaitable[None]]:
    async def show() -> None:
        await app.switch_mode(mode)

    return show


def _on_screen(app: StudioApp, mode: str, action: str) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await app.switch_mode(mode)
        await app.run_action(action, app.screen)

    return run


def _set_theme(app: StudioApp, name: str) -> Callable[[], None]:
    def set_theme() -> None:
        app.theme = name

    return set_theme
