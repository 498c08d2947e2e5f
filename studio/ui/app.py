"""The ftstudio app: screens by mode, themes, the trainer worker, and worker failures.

Screens are Textual modes (`navigation.DESTINATIONS`), switched with the number keys, the
header's tabs or the command palette. The trainer runs on a thread worker owned by the app, so
a run goes on whichever screen is showing; its events reach the screens through the
`RunMonitor` and the `run_changed` signal.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.signal import Signal
from textual.worker import Worker, WorkerState

from studio.config import RunConfig
from studio.engine.control import TrainingControl
from studio.engine.events import EventBus, RunFinished, RunState, StateChanged
from studio.ui.messages import RunCompleted, RunFailed, RunProgress, RunStateChanged
from studio.ui.navigation import DESTINATIONS, modes, navigation_bindings
from studio.ui.palette import studio_commands
from studio.ui.run_monitor import RunMonitor
from studio.ui.screens.dialogs import ConfirmScreen, ErrorScreen
from studio.ui.settings import DEFAULT_THEME, UserSettings, load_settings, save_settings
from studio.ui.state import StudioServices, StudioState
from studio.ui.themes import APP_VARIABLES, BUILTIN_THEMES_DIR, load_themes
from studio.ui.throttle import Throttle
from studio.ui.trainer_bridge import TrainerBridge

FALLBACK_THEME = "textual-dark"
# Run news reaches the screens at most this often; each screen throttles its own redraws too.
PROGRESS_INTERVAL = 0.25


class StudioApp(App[int]):
    """Terminal fine-tuning studio."""

    CSS_PATH = Path(__file__).parent / "app.tcss"
    TITLE = "ftstudio"
    MODES = modes()
    DEFAULT_MODE = DESTINATIONS[0].mode
    BINDINGS: ClassVar[list[BindingType]] = [
        *navigation_bindings(),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f1", "app.show_help_panel", "Keys", show=False),
    ]

    def __init__(self, services: StudioServices | None = None) -> None:
        super().__init__()
        self.services = services or StudioServices()
        self.studio = StudioState()
        self.monitor: RunMonitor | None = None
        self.control: TrainingControl | None = None
        self.settings = UserSettings()
        self.run_changed: Signal[RunMonitor] = Signal(self, "run-changed")
        """Published when the run has news (coalesced); subscribers throttle their redraws."""
        self.config_changed: Signal[RunConfig] = Signal(self, "config-changed")
        """Published when the config the screens share changes."""
        self._progress = Throttle(self, PROGRESS_INTERVAL, self._publish_progress)

    # ---------------------------------------------------------------- start-up, themes

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(APP_VARIABLES)

    def on_mount(self) -> None:
        self.settings, problem = load_settings(self.services.settings_file)
        if problem:
            self.notify(problem, title="Settings", severity="warning", timeout=10, markup=False)
        self._register_themes()
        self.theme_changed_signal.subscribe(self, self._remember_theme)

    def _register_themes(self) -> None:
        from studio.ui.settings import user_themes_dir

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
        yield from super().get_system_commands(screen)
        yield from studio_commands(self, screen)

    async def action_quit(self) -> None:
        if not self.training_active:
            self.exit(0)
            return

        def answered(stop: bool | None) -> None:
            if stop and self.control is not None:
                self.control.stop()  # saves at the end of the current step, then the thread ends
                self.exit(0)

        self.push_screen(
            ConfirmScreen(
                "A run is training. Stop it (the adapter is saved) and quit?",
                yes="Stop and quit",
                no="Keep training",
            ),
            answered,
        )

    # ---------------------------------------------------------------- config

    def set_config(self, config: RunConfig, problem: str | None = None) -> None:
        """The Config screen's latest valid config (and what is wrong with the form, if any)."""
        self.studio.config = config
        self.studio.config_problem = problem
        self.config_changed.publish(config)

    # ---------------------------------------------------------------- training

    @property
    def training_active(self) -> bool:
        return self.monitor is not None and any(
            worker.group == "trainer" and worker.is_running for worker in self.workers
        )

    def start_training(self) -> bool:
        """Start a run with the current config; False (with a message) when it cannot."""
        if self.training_active:
            self.notify("a run is already training", severity="warning", markup=False)
            return False
        if self.studio.config_problem:
            self.notify(
                f"the config is not valid: {self.studio.config_problem}",
                title="Cannot start",
                severity="error",
                timeout=10,
                markup=False,
            )
            return False
        self.monitor = RunMonitor()
        self.control = TrainingControl()
        self.run_changed.publish(self.monitor)
        self._train(self.studio.config, self.monitor, self.control)
        return True

    @work(thread=True, exclusive=True, exit_on_error=False, group="trainer")
    def _train(
        self, config: RunConfig, monitor: RunMonitor, control: TrainingControl
    ) -> RunFinished:
        from studio.engine.session import TrainingSession
        from studio.ui.heavy_imports import ensure_ml_imports

        ensure_ml_imports()
        bus = EventBus()
        bus.subscribe(TrainerBridge(self, monitor))
        session = TrainingSession(
            config,
            bus,
            control,
            base_dir=self.services.workdir,
            telemetry_interval=self.services.telemetry_interval,
        )
        return session.run()

    def pause_training(self) -> None:
        if self.control is None or not self.training_active:
            self.notify("no run is training", severity="warning", markup=False)
            return
        self.control.pause()
        self.notify("pausing at the end of this step", markup=False)

    def resume_training(self) -> None:
        if self.control is None or not self.training_active:
            self.notify("no run is training", severity="warning", markup=False)
            return
        self.control.resume()

    def stop_training(self) -> None:
        if self.control is None or not self.training_active:
            self.notify("no run is training", severity="warning", markup=False)
            return
        self.control.stop()
        self.notify("stopping after this step; the adapter will be saved", markup=False)

    def save_checkpoint_now(self) -> None:
        if self.control is None or not self.training_active:
            self.notify("no run is training", severity="warning", markup=False)
            return
        self.control.request_save()
        self.notify("a checkpoint will be written at the end of this step", markup=False)

    @on(RunProgress)
    def _run_progress(self, message: RunProgress) -> None:
        if self.monitor is not None:
            self.monitor.notification_read()
            self._progress.request()

    def _publish_progress(self) -> None:
        if self.monitor is not None:
            self.run_changed.publish(self.monitor)

    @on(RunStateChanged)
    def _run_state_changed(self, message: RunStateChanged) -> None:
        if self.monitor is not None:
            self.run_changed.publish(self.monitor)

    @on(RunFailed)
    def _run_failed(self, message: RunFailed) -> None:
        error = message.error
        title = "Training failed" + (f" at step {error.step}" if error.step else "")
        self.push_screen(ErrorScreen(f"{title} ({error.kind})", error.message, error.advice))

    @on(RunCompleted)
    def _run_completed(self, message: RunCompleted) -> None:
        summary = message.summary
        if summary.run_dir:
            self.studio.last_run_dir = summary.run_dir
        if summary.state is RunState.FINISHED:
            where = self.services.display(summary.adapter_dir or summary.run_dir)
            self.notify(f"run finished after {summary.steps} steps; saved to {where}", markup=False)
        elif summary.state is RunState.STOPPED:
            self.notify(f"run stopped after {summary.steps} steps", markup=False)
        if self.monitor is not None:
            self.run_changed.publish(self.monitor)

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
        if worker.group == "trainer" and self.monitor is not None:
            # The session reports its own failures; this is a crash around it. Mark the run
            # failed so no screen keeps saying it is training.
            self.monitor.record(StateChanged(RunState.FAILED, f"crashed: {worker.error}"))
            self.run_changed.publish(self.monitor)


def make_app(services: StudioServices | None = None) -> StudioApp:
    """The app factory tests and snapshots use."""
    return StudioApp(services)


def run_app() -> int:
    """Run the studio in this terminal; returns the exit status."""
    app = make_app(StudioServices(workdir=Path.cwd()))
    result = app.run()
    if app.control is not None and app.control.stop_requested and app.training_active:
        print("stopping the run at the end of this step and saving the adapter…", flush=True)
    return result if isinstance(result, int) else (app.return_code or 0)
