"""The ftstudio app: screens by mode, themes, quitting, and worker failures.

Screens are Textual modes (`navigation.DESTINATIONS`), switched with the number keys, the
header's tabs or the command palette. The run every screen shows — started, attached to,
resumed, paused, stopped — belongs to the run controller (`app.runs`,
`studio.ui.runs.controller`), which screens call; the app hands it the run's messages. The
trainer's worker runs on the app, so a run goes on whichever screen is showing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath
from typing import ClassVar, Literal

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.signal import Signal
from textual.worker import Worker, WorkerState

from studio.config import RunConfig
from studio.ui.chrome.navigation import DESTINATIONS, modes, navigation_bindings
from studio.ui.chrome.palette import studio_commands
from studio.ui.chrome.state import StudioServices, StudioState
from studio.ui.chrome.themes import APP_VARIABLES, BUILTIN_THEMES_DIR, load_themes
from studio.ui.runs.controller import TRAINER_GROUP, RunController
from studio.ui.runs.messages import RunMessage
from studio.ui.screens.dialogs import Answer, ChoiceScreen, ErrorScreen
from studio.user_settings import DEFAULT_THEME, load_settings, save_settings

FALLBACK_THEME = "textual-dark"
QUIT_QUESTION = (
    "A run is training. Stop it (the adapter is saved) and quit, or keep it running in the "
    "background: it goes on without the studio, and `ftstudio` attaches to it again later."
)
QUIT_CHOICES = (
    Answer("stop", "Stop and quit", "s", "warning"),
    Answer("keep", "Keep running, quit", "k", "primary"),
    Answer("cancel", "Cancel", "escape"),
)


class StudioApp(App[int]):
    """Terminal fine-tuning studio."""

    CSS_PATH: ClassVar[list[str | PurePath]] = [
        Path(__file__).parent / "app.tcss",
        Path(__file__).parent / "runs.tcss",
    ]
    TITLE = "ftstudio"
    MODES = modes()
    DEFAULT_MODE = DESTINATIONS[0].mode
    BINDINGS: ClassVar[list[BindingType]] = [
        *navigation_bindings(),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("question_mark,f1", "show_keys", "Keys", show=False),
        Binding("ctrl+r", "attach_running", "Attach to run"),
    ]

    def __init__(self, services: StudioServices | None = None) -> None:
        super().__init__()
        self.services = services or StudioServices()
        self.studio = StudioState()
        self.runs = RunController(self)
        """The run every screen shows: start, attach, resume, re-run, pause, stop, save."""
        self.look_for_running_runs = False
        """Check the runs folder for runs other processes train, at start-up (`run_app` sets
        it; tests leave it off, so a run elsewhere on the machine never shows up in them)."""
        self.leaving: Literal["stop", "keep", "hangup"] | None = None
        """How the studio was left: the run stopped, kept running headless, or the terminal
        hung up. `run_app` reads it after the app has exited."""
        # Read now, not on mount: the first screen mounts before the app's on_mount runs, and
        # the Models screen lists the user's added models from these settings.
        self.settings, self._settings_problem = load_settings(self.services.settings_file)
        self.config_changed: Signal[RunConfig] = Signal(self, "config-changed")
        """Published when the config the screens share changes."""

    # ---------------------------------------------------------------- start-up, themes

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(APP_VARIABLES)

    def on_mount(self) -> None:
        from studio.ui.chrome.glyphs import is_plain

        if is_plain():
            self.add_class("-ascii")  # square borders: the Linux console has no round corners
        if problem := self._settings_problem:
            self.notify(problem, title="Settings", severity="warning", timeout=10, markup=False)
        self._register_themes()
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        if self.look_for_running_runs:
            self.runs.look_for_running_runs()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "attach_running":
            return bool(self.runs.running_elsewhere)
        return True

    def action_attach_running(self) -> None:
        """Attach to the newest run another process was training at start-up."""
        self.runs.attach_newest_elsewhere()

    def _register_themes(self) -> None:
        from studio.user_settings import user_themes_dir

        user_dir = self.services.user_themes_dir or user_themes_dir()
        catalog = load_themes(BUILTIN_THEMES_DIR, user_dir)
        for theme in catalog.themes:
            self.register_theme(theme)
        for problem in catalog.problems:
            self.notify(
                f"{problem}; theme skipped", title="Theme", severity="warning", markup=False
            )
        wanted = self.settings.theme
        if wanted in self.available_themes:
            self.theme = wanted
            return
        fallback = DEFAULT_THEME if DEFAULT_THEME in self.available_themes else FALLBACK_THEME
        if wanted != DEFAULT_THEME or fallback != DEFAULT_THEME:
            self.notify(
                f"theme '{wanted}' is not available; using '{fallback}'",
                title="Theme",
                severity="warning",
                timeout=10,
                markup=False,
            )
        self.theme = fallback

    def _remember_theme(self, theme: object) -> None:
        name = getattr(theme, "name", None)
        if not name or name == self.settings.theme:
            return
        self.settings.theme = name
        self.save_user_settings()

    def save_user_settings(self) -> None:
        problem = save_settings(self.settings, self.services.settings_file)
        if problem:
            self.notify(problem, title="Settings", severity="warning", markup=False)

    # ---------------------------------------------------------------- navigation, palette

    def action_show(self, mode: str) -> None:
        """Show one of the studio's screens."""
        self.switch_mode(mode)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        # Textual's own theme picker lists its built-in themes too, and its key panel neither
        # closes with esc nor shows the keys the footer hides: ours replace both.
        for command in super().get_system_commands(screen):
            if command.title not in ("Theme", "Keys"):
                yield command
        yield SystemCommand("Keys", "Every key of this screen (? or F1)", self.action_show_keys)
        yield from studio_commands(self, screen)

    def action_show_keys(self) -> None:
        """The keys of the current screen, footer or not, in an overlay."""
        from studio.ui.screens.keys import KeysScreen

        if isinstance(self.screen, KeysScreen):
            self.screen.dismiss()
            return
        title = next(
            (d.title for d in DESTINATIONS if d.mode == self.current_mode), self.current_mode
        )
        self.push_screen(KeysScreen(self.screen, title))

    async def action_quit(self) -> None:
        runs = self.runs
        if not runs.trainer_running:
            self.exit(0)  # an attached run is another process's: it goes on without us
            return
        if isinstance(self.screen, ChoiceScreen):
            return  # the question is on screen already

        def answered(choice: str | None) -> None:
            if choice == "stop" and runs.control is not None:
                runs.control.stop()  # saves at the end of the current step, then the thread ends
                self.leave("stop")
            elif choice == "keep":
                self.leave("keep")

        self.push_screen(ChoiceScreen(QUIT_QUESTION, QUIT_CHOICES), answered)

    def leave(self, how: Literal["stop", "keep", "hangup"]) -> None:
        """Exit the app with a run going; `run_app` then waits for it (stop), or keeps the
        process alive without the terminal until it ends (keep, hangup)."""
        self.leaving = how
        self.exit(0)

    def terminal_hung_up(self) -> None:
        """The terminal went away (SIGHUP; called on the event loop): leave at once. A run
        training here goes on headless; one attached to goes on in its own process."""
        self.leave("hangup")

    def on_unmount(self) -> None:
        self.runs.let_go()  # stop reading an attached run's folder; the run goes on

    # ---------------------------------------------------------------- config

    def set_config(self, config: RunConfig, problem: str | None = None) -> None:
        """The Config screen's latest valid config (and what is wrong with the form, if any)."""
        self.studio.config = config
        self.studio.config_problem = problem
        self.config_changed.publish(config)

    # ---------------------------------------------------------------- run news

    @on(RunMessage)
    def _run_news(self, message: RunMessage) -> None:
        self.runs.handle(message)

    # ---------------------------------------------------------------- worker failures

    @on(Worker.StateChanged)
    def _worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.worker_failed(event)

    def worker_failed(self, event: Worker.StateChanged) -> None:
        """The one place where a failed worker (trainer, chat, inspection) becomes a message.

        Worker.StateChanged does not bubble: the app's workers arrive here directly, the
        screens' through `StudioScreen`'s handler.
        """
        worker = event.worker
        if event.state is not WorkerState.ERROR or worker.error is None:
            return
        titles = {
            "trainer": "Training stopped by an error",
            "chat": "Chat failed",
            "chat-load": "Could not load the chat model",
            "models": "Could not read the model",
            "dataset": "Could not read the dataset",
        }
        title = titles.get(worker.group, f"{worker.name or 'background task'} failed")
        self.push_screen(ErrorScreen.from_exception(title, worker.error))
        if worker.group == TRAINER_GROUP:
            self.runs.trainer_crashed(worker.error)


def make_app(services: StudioServices | None = None) -> StudioApp:
    """The app factory tests and snapshots use."""
    return StudioApp(services)


def run_app(config_file: str | None = None, overrides: Sequence[str] = ()) -> int:
    """Run the studio in this terminal, starting from the run config in `config_file` (with
    `key=value` overrides) when given; returns the exit status once the app, and any run it
    left going, has ended. A bad config raises `ConfigError` before the app starts.

    A run training here survives the terminal: quitting may leave it running headless, and a
    hang-up (SIGHUP) does so without asking (`studio.ui.chrome.terminal`)."""
    from studio.config import load_config

    app = make_app(StudioServices(workdir=Path.cwd()))
    if config_file is not None:
        saved = load_config(config_file)
        app.studio.config = load_config(config_file, list(overrides)) if overrides else saved
        app.studio.config_file = config_file
        app.studio.config_file_saved = saved
    app.look_for_running_runs = True
    if os.name != "posix":  # no SIGHUP, no Linux driver: Textual's own way
        result = app.run()
        return result if isinstance(result, int) else (app.return_code or 0)
    from studio.ui.chrome.terminal import run_app_in_terminal

    return run_app_in_terminal(app)
