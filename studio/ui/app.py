"""The ftstudio app: screens by mode, themes, the trainer worker, and worker failures.

Screens are Textual modes (`navigation.DESTINATIONS`), switched with the number keys, the
header's tabs or the command palette. The trainer runs on a thread worker owned by the app, so
a run goes on whichever screen is showing; its events reach the screens through the
`RunMonitor` and the `run_changed` signal.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.signal import Signal
from textual.worker import Worker, WorkerState

from studio.config import RunConfig
from studio.engine.control import TrainingControl
from studio.engine.events import EventBus, RunFinished, RunState, StateChanged
from studio.engine.remote_control import RemoteControl
from studio.ui.attach import AttachedRun, RunningRun, running_elsewhere
from studio.ui.messages import RunCompleted, RunFailed, RunProgress, RunStateChanged
from studio.ui.navigation import DESTINATIONS, modes, navigation_bindings
from studio.ui.palette import studio_commands
from studio.ui.run_launch import SessionFactory
from studio.ui.run_monitor import RunMonitor
from studio.ui.screens.dialogs import Choice, ChoiceScreen, ErrorScreen
from studio.ui.settings import DEFAULT_THEME, load_settings, save_settings
from studio.ui.state import StudioServices, StudioState
from studio.ui.themes import APP_VARIABLES, BUILTIN_THEMES_DIR, load_themes
from studio.ui.throttle import Throttle

if TYPE_CHECKING:
    from studio.engine.session import TrainingSession

# What pause / resume / stop / save go through: this process's trainer, or another's.
Controls = TrainingControl | RemoteControl

FALLBACK_THEME = "textual-dark"
# Run news reaches the screens at most this often; each screen throttles its own redraws too.
PROGRESS_INTERVAL = 0.25
QUIT_QUESTION = (
    "A run is training. Stop it (the adapter is saved) and quit, or keep it running in the "
    "background: it goes on without the studio, and `ftstudio` attaches to it again later."
)
QUIT_CHOICES = (
    Choice("stop", "Stop and quit", "s", "warning"),
    Choice("keep", "Keep running, quit", "k", "primary"),
    Choice("cancel", "Cancel", "escape"),
)


class StudioApp(App[int]):
    """Terminal fine-tuning studio."""

    CSS_PATH: ClassVar[list[str | Path]] = [
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
        self.monitor: RunMonitor | None = None
        self.control: Controls | None = None
        self.resumed_run: Path | None = None
        """The run folder the current run resumes (kept from deletion while it trains)."""
        self.attached: AttachedRun | None = None
        """The run followed from its folder (trained by another process), if any."""
        self.running_elsewhere: list[RunningRun] = []
        """Runs other live processes were training when the studio started (ctrl+r attaches)."""
        self.look_for_running_runs = False
        """Check the runs folder for runs other processes train, at start-up (`run_app` sets
        it; tests leave it off, so a run elsewhere on the machine never shows up in them)."""
        self.leaving: Literal["stop", "keep", "hangup"] | None = None
        """How the studio was left: the run stopped, kept running headless, or the terminal
        hung up. `run_app` reads it after the app has exited."""
        # Read now, not on mount: the first screen mounts before the app's on_mount runs, and
        # the Models screen lists the user's added models from these settings.
        self.settings, self._settings_problem = load_settings(self.services.settings_file)
        self.run_changed: Signal[RunMonitor] = Signal(self, "run-changed")
        """Published when the run has news (coalesced); subscribers throttle their redraws."""
        self.config_changed: Signal[RunConfig] = Signal(self, "config-changed")
        """Published when the config the screens share changes."""
        self._progress = Throttle(self, PROGRESS_INTERVAL, self._publish_progress)

    # ---------------------------------------------------------------- start-up, themes

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(APP_VARIABLES)

    def on_mount(self) -> None:
        from studio.ui.glyphs import is_plain

        if is_plain():
            self.add_class("-ascii")  # square borders: the Linux console has no round corners
        if problem := self._settings_problem:
            self.notify(problem, title="Settings", severity="warning", timeout=10, markup=False)
        self._register_themes()
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        if self.look_for_running_runs:
            self._look_for_running_runs()

    @work(thread=True, exit_on_error=False, group="startup")
    def _look_for_running_runs(self) -> None:
        runs = running_elsewhere(self.services.resolve(self.studio.config.output.runs_dir))
        if runs:
            self.call_from_thread(self._offer_attach, runs)

    def _offer_attach(self, runs: list[RunningRun]) -> None:
        self.running_elsewhere = runs
        self.refresh_bindings()
        newest = runs[0]
        pid = f"pid {newest.pid}" if newest.pid else "another process"
        more = f" ({len(runs) - 1} more on the Runs screen, key 5)" if len(runs) > 1 else ""
        self.notify(
            f"{newest.name} is training ({pid}): ctrl+r attaches to it{more}",
            title="A run is going on",
            timeout=15,
            markup=False,
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "attach_running":
            return bool(self.running_elsewhere)
        return True

    def action_attach_running(self) -> None:
        """Attach to the newest run another process was training at start-up."""
        if self.running_elsewhere:
            self.attach_run(self.running_elsewhere[0].path)

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
        if not self.trainer_running:
            self.exit(0)  # an attached run is another process's: it goes on without us
            return
        if isinstance(self.screen, ChoiceScreen):
            return  # the question is on screen already

        def answered(choice: str | None) -> None:
            if choice == "stop" and self.control is not None:
                self.control.stop()  # saves at the end of the current step, then the thread ends
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
        if self.attached is not None:
            self.attached.close()  # stop reading its folder; the run goes on

    # ---------------------------------------------------------------- config

    def set_config(self, config: RunConfig, problem: str | None = None) -> None:
        """The Config screen's latest valid config (and what is wrong with the form, if any)."""
        self.studio.config = config
        self.studio.config_problem = problem
        self.config_changed.publish(config)

    # ---------------------------------------------------------------- training

    @property
    def training_active(self) -> bool:
        """A run is going on: trained here, or trained elsewhere and attached to."""
        return self.trainer_running or self.attached_run_live

    @property
    def trainer_running(self) -> bool:
        """This process's trainer worker is training a run."""
        return self.monitor is not None and any(
            worker.group == "trainer" and worker.is_running for worker in self.workers
        )

    @property
    def attached_run_live(self) -> bool:
        """The Train screen follows a run another process is training, and it has not ended."""
        attached = self.attached
        return attached is not None and attached.monitor is self.monitor and attached.live

    def attach_run(self, run_dir: str | Path) -> bool:
        """Follow a run another process trains on the Train screen: its whole history, then
        live; pause, stop and save-now reach it through its run directory. False (with a
        message) when it cannot be attached to."""
        from studio.ui.attach import attach_problem

        run = self.services.resolve(run_dir)
        if self.trainer_running:
            here = self.monitor.run_dir if self.monitor is not None else None
            if here is not None and Path(here).resolve() == run.resolve():
                self.switch_mode("train")  # the run this studio trains: it is on Train already
                return True
            self.notify(
                "a run is training in this studio; attach when it has ended",
                title="Cannot attach",
                severity="warning",
                markup=False,
            )
            return False
        problem = attach_problem(run)
        if problem:
            self.notify(problem, title="Cannot attach", severity="error", markup=False)
            return False
        attached = AttachedRun(self, run)
        self._replace_run(attached.monitor, attached.control)
        self.attached = attached
        attached.start()
        self.running_elsewhere = [known for known in self.running_elsewhere if known.path != run]
        self.refresh_bindings()
        self.switch_mode("train")
        self.notify(
            f"attached to {run.name}: its history, then live; quitting leaves it running",
            markup=False,
        )
        return True

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
        config = self.studio.config
        options = self._session_options()

        def make(bus: EventBus, control: TrainingControl) -> TrainingSession:
            # One device in-process, several as a torchrun group (config.devices).
            from studio.engine.launcher import session_for_config

            return session_for_config(config, bus, control, **options)

        monitor, control = RunMonitor(), TrainingControl()
        self._replace_run(monitor, control)
        self._train(make, monitor, control)
        return True

    def _session_options(self) -> dict[str, Any]:
        return {
            "base_dir": self.services.workdir,
            "telemetry_interval": self.services.telemetry_interval,
        }

    def _replace_run(self, monitor: RunMonitor, control: Controls) -> None:
        """Make `monitor` the run every screen shows; a run followed until now is let go (its
        messages still queued are dropped: they name the old monitor)."""
        if self.attached is not None:
            self.attached.close()
            self.attached = None
        self.resumed_run = None  # resume_run names its run again after this
        self.monitor, self.control = monitor, control
        self.run_changed.publish(monitor)

    @work(thread=True, exclusive=True, exit_on_error=False, group="trainer")
    def _train(
        self,
        make_session: SessionFactory,
        monitor: RunMonitor,
        control: TrainingControl,
        history_from: Path | None = None,
    ) -> RunFinished:
        """The trainer worker: every run this studio trains (new, resumed, relaunched)."""
        from studio.ui.run_launch import train_session

        return train_session(self, make_session, monitor, control, history_from)

    def _control(self, command: str, done: str | None = None) -> None:
        """Send pause / resume / stop / save to the run: this process's trainer, or another
        process's through its run folder (which may be unwritable or gone)."""
        if self.control is None or not self.training_active:
            self.notify("no run is training", severity="warning", markup=False)
            return
        try:
            getattr(self.control, command)()
        except OSError as error:
            self.notify(
                f"cannot reach the run: {error.strerror or error}",
                title="Run control",
                severity="error",
                markup=False,
            )
            return
        if done:
            self.notify(done, markup=False)

    def pause_training(self) -> None:
        self._control("pause", "pausing at the end of this step")

    def resume_training(self) -> None:
        self._control("resume")

    def stop_training(self) -> None:
        self._control("stop", "stopping after this step; the adapter will be saved")

    def save_checkpoint_now(self) -> None:
        self._control("request_save", "a checkpoint will be written at the end of this step")

    @on(RunProgress)
    def _run_progress(self, message: RunProgress) -> None:
        if message.monitor is self.monitor:
            message.monitor.notification_read()
            self._progress.request()

    def _publish_progress(self) -> None:
        if self.monitor is not None:
            self.run_changed.publish(self.monitor)

    @on(RunStateChanged)
    def _run_state_changed(self, message: RunStateChanged) -> None:
        if message.monitor is self.monitor:
            self.run_changed.publish(message.monitor)

    @on(RunFailed)
    def _run_failed(self, message: RunFailed) -> None:
        if message.monitor is not self.monitor:
            return  # a run the studio no longer shows
        error = message.error
        title = "Training failed" + (f" at step {error.step}" if error.step else "")
        self.push_screen(ErrorScreen(f"{title} ({error.kind})", error.message, error.advice))

    @on(RunCompleted)
    def _run_completed(self, message: RunCompleted) -> None:
        if message.monitor is not self.monitor:
            return
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

    # ---------------------------------------------------------------- runs: resume, re-run

    def resume_run(self, run_dir: str | Path, changes: object = None) -> bool:
        """Go on with a stopped, failed or interrupted run from its last complete checkpoint,
        on the trainer worker; the Train screen shows it live, its earlier steps included.

        `changes` is None, a dict of dotted config overrides, or an out-of-memory triage
        choice (`studio.engine.errors.MemoryChoice`, which may start a new run beside the old
        one). False (with a message) when the run cannot go on."""
        from studio.engine.errors import MemoryChoice
        from studio.runs.catalog import resume_blocker
        from studio.ui.run_launch import relaunch_factory, resume_factory

        run = Path(run_dir)
        if self.training_active:
            self.notify("a run is already training", severity="warning", markup=False)
            return False
        problem = resume_blocker(run)
        if problem:
            self.notify(problem, title="Cannot resume", severity="error", markup=False)
            return False
        options = self._session_options()
        if isinstance(changes, MemoryChoice):
            make = relaunch_factory(run, changes, **options)
            keeps_history = changes.carry != "nothing"
        else:
            make = resume_factory(run, changes if isinstance(changes, dict) else None, **options)
            keeps_history = True
        monitor, control = RunMonitor(), TrainingControl()
        self._replace_run(monitor, control)
        self.resumed_run = run
        self._train(make, monitor, control, run if keeps_history else None)
        return True

    def run_in_use(self, run_dir: str | Path) -> bool:
        """True while this studio's trainer has `run_dir` open (being resumed, or training):
        it must not be deleted or exported under the trainer's feet."""
        if not self.trainer_running:
            return False
        path = Path(run_dir).resolve()
        monitor_dir = self.monitor.run_dir if self.monitor is not None else None
        open_dirs = [self.resumed_run, Path(monitor_dir) if monitor_dir else None]
        return any(known is not None and known.resolve() == path for known in open_dirs)

    def rerun(self, run_dir: str | Path) -> bool:
        """Make an old run's config the current one (under a new run name) and show it on the
        Config screen, to edit and start as a new run. False (with a message) when it cannot
        be read."""
        from studio.errors import StudioError
        from studio.runs.catalog import config_for_rerun

        run = Path(run_dir)
        try:
            config = config_for_rerun(run)
        except (StudioError, OSError) as error:
            self.push_screen(ErrorScreen.from_exception(f"Cannot re-run {run.name}", error))
            return False
        # Not the run's config.yaml: saving must never write into an old run.
        self.studio.config_file = None
        self.studio.config_file_saved = None
        self.set_config(config)
        self.switch_mode("config")
        self.notify(
            f"the config of {run.name} is loaded: edit it here, then start it on Train (key 3)",
            markup=False,
        )
        return True

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


def run_app(config_file: str | None = None, overrides: Sequence[str] = ()) -> int:
    """Run the studio in this terminal, starting from the run config in `config_file` (with
    `key=value` overrides) when given; returns the exit status once the app, and any run it
    left going, has ended. A bad config raises `ConfigError` before the app starts.

    A run training here survives the terminal: quitting may leave it running headless, and a
    hang-up (SIGHUP) does so without asking (`studio.ui.terminal`)."""
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
    from studio.ui.terminal import run_app_in_terminal

    return run_app_in_terminal(app)
