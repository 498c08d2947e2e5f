"""The run controller: the one run the studio shows, and everything done to it.

It starts a run from the current config, attaches to a run another process trains, resumes
or relaunches an old run, loads an old run's config for a re-run, and sends pause / resume /
stop / save-now to whichever run is showing. The trainer runs on a thread worker owned by the
app (so a run goes on whichever screen is showing); its events reach the controller as
`RunMessage`s (`trainer_bridge`), and the screens hear of them through the `changed` signal.

Screens call the controller (`app.runs`); the app only hands it the run messages, the trainer
worker's crash and the quit question.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.signal import Signal

from studio.engine.control import TrainingControl
from studio.engine.events import EventBus, RunState, StateChanged
from studio.engine.remote_control import RemoteControl
from studio.ui.chrome.throttle import Throttle
from studio.ui.runs.attach import AttachedRun, RunningRun, running_elsewhere
from studio.ui.runs.launch import SessionFactory
from studio.ui.runs.messages import (
    RunCompleted,
    RunFailed,
    RunMessage,
    RunProgress,
    RunStateChanged,
)
from studio.ui.runs.monitor import RunMonitor
from studio.ui.screens.dialogs import ErrorScreen

if TYPE_CHECKING:
    from studio.engine.session import TrainingSession
    from studio.ui.app import StudioApp

# What pause / resume / stop / save go through: this process's trainer, or another's.
Controls = TrainingControl | RemoteControl

# Run news reaches the screens at most this often; each screen throttles its own redraws too.
PROGRESS_INTERVAL = 0.25
TRAINER_GROUP = "trainer"


class RunController:
    """Start, attach, resume, re-run and control the run every screen shows."""

    def __init__(self, app: StudioApp) -> None:
        self.app = app
        self.monitor: RunMonitor | None = None
        """The run every screen shows: what its events recorded so far."""
        self.control: Controls | None = None
        self.resumed_run: Path | None = None
        """The run folder the current run resumes (kept from deletion while it trains)."""
        self.attached: AttachedRun | None = None
        """The run followed from its folder (trained by another process), if any."""
        self.running_elsewhere: list[RunningRun] = []
        """Runs other live processes were training when the studio started (ctrl+r attaches)."""
        self.changed: Signal[RunMonitor] = Signal(app, "run-changed")
        """Published when the run has news (coalesced); subscribers throttle their redraws."""
        self._progress = Throttle(app, PROGRESS_INTERVAL, self._publish_progress)

    # ---------------------------------------------------------------- what is going on

    @property
    def training_active(self) -> bool:
        """A run is going on: trained here, or trained elsewhere and attached to."""
        return self.trainer_running or self.attached_run_live

    @property
    def trainer_running(self) -> bool:
        """This process's trainer worker is training a run."""
        return self.monitor is not None and any(
            worker.group == TRAINER_GROUP and worker.is_running for worker in self.app.workers
        )

    @property
    def attached_run_live(self) -> bool:
        """The Train screen follows a run another process is training, and it has not ended."""
        attached = self.attached
        return attached is not None and attached.monitor is self.monitor and attached.live

    def run_in_use(self, run_dir: str | Path) -> bool:
        """True while this studio's trainer has `run_dir` open (being resumed, or training):
        it must not be deleted or exported under the trainer's feet."""
        if not self.trainer_running:
            return False
        path = Path(run_dir).resolve()
        monitor_dir = self.monitor.run_dir if self.monitor is not None else None
        open_dirs = [self.resumed_run, Path(monitor_dir) if monitor_dir else None]
        return any(known is not None and known.resolve() == path for known in open_dirs)

    # ---------------------------------------------------------------- runs elsewhere

    def look_for_running_runs(self) -> None:
        """At start-up: offer to attach to runs other processes are training (read on a
        thread: it lists the runs folder)."""
        runs_dir = self.app.services.resolve(self.app.studio.config.output.runs_dir)
        self.app.run_worker(
            partial(self._find_running_runs, runs_dir),
            name="look-for-running-runs",
            group="startup",
            thread=True,
            exit_on_error=False,
        )

    def _find_running_runs(self, runs_dir: Path) -> None:
        runs = running_elsewhere(runs_dir)
        if runs:
            self.app.call_from_thread(self._offer_attach, runs)

    def _offer_attach(self, runs: list[RunningRun]) -> None:
        self.running_elsewhere = runs
        self.app.refresh_bindings()
        newest = runs[0]
        pid = f"pid {newest.pid}" if newest.pid else "another process"
        more = f" ({len(runs) - 1} more on the Runs screen, key 5)" if len(runs) > 1 else ""
        self.app.notify(
            f"{newest.name} is training ({pid}): ctrl+r attaches to it{more}",
            title="A run is going on",
            timeout=15,
            markup=False,
        )

    def attach_newest_elsewhere(self) -> None:
        """Attach to the newest run another process was training at start-up."""
        if self.running_elsewhere:
            self.attach_run(self.running_elsewhere[0].path)

    def attach_run(self, run_dir: str | Path) -> bool:
        """Follow a run another process trains on the Train screen: its whole history, then
        live; pause, stop and save-now reach it through its run directory. False (with a
        message) when it cannot be attached to."""
        from studio.ui.runs.attach import attach_problem

        app = self.app
        run = app.services.resolve(run_dir)
        if self.trainer_running:
            here = self.monitor.run_dir if self.monitor is not None else None
            if here is not None and Path(here).resolve() == run.resolve():
                app.switch_mode("train")  # the run this studio trains: it is on Train already
                return True
            app.notify(
                "a run is training in this studio; attach when it has ended",
                title="Cannot attach",
                severity="warning",
                markup=False,
            )
            return False
        problem = attach_problem(run)
        if problem:
            app.notify(problem, title="Cannot attach", severity="error", markup=False)
            return False
        attached = AttachedRun(app, run)
        self._replace_run(attached.monitor, attached.control)
        self.attached = attached
        attached.start()
        self.running_elsewhere = [known for known in self.running_elsewhere if known.path != run]
        app.refresh_bindings()
        app.switch_mode("train")
        app.notify(
            f"attached to {run.name}: its history, then live; quitting leaves it running",
            markup=False,
        )
        return True

    def let_go(self) -> None:
        """Stop following an attached run (the app is closing); the run itself goes on."""
        if self.attached is not None:
            self.attached.close()

    # ---------------------------------------------------------------- starting runs

    def start_training(self) -> bool:
        """Start a run with the current config; False (with a message) when it cannot."""
        app = self.app
        if self.training_active:
            app.notify("a run is already training", severity="warning", markup=False)
            return False
        problem = app.studio.config_problem
        if problem:
            app.notify(
                f"the config is not valid: {problem}",
                title="Cannot start",
                severity="error",
                timeout=10,
                markup=False,
            )
            return False
        config = app.studio.config
        options = self._session_options()

        def make(bus: EventBus, control: TrainingControl) -> TrainingSession:
            # One device in-process, several as a torchrun group (config.devices).
            from studio.engine.launcher import session_for_config

            return session_for_config(config, bus, control, **options)

        monitor, control = RunMonitor(), TrainingControl()
        self._replace_run(monitor, control)
        self._train(make, monitor, control)
        return True

    def resume_run(self, run_dir: str | Path, changes: object = None) -> bool:
        """Go on with a stopped, failed or interrupted run from its last complete checkpoint,
        on the trainer worker; the Train screen shows it live, its earlier steps included.

        `changes` is None, a dict of dotted config overrides, or an out-of-memory triage
        choice (`studio.engine.errors.MemoryChoice`, which may start a new run beside the old
        one). False (with a message) when the run cannot go on."""
        from studio.engine.errors import MemoryChoice
        from studio.runs.catalog import resume_blocker
        from studio.ui.runs.launch import relaunch_factory, resume_factory

        app = self.app
        run = Path(run_dir)
        if self.training_active:
            app.notify("a run is already training", severity="warning", markup=False)
            return False
        problem = resume_blocker(run)
        if problem:
            app.notify(problem, title="Cannot resume", severity="error", markup=False)
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

    def rerun(self, run_dir: str | Path) -> bool:
        """Make an old run's config the current one (under a new run name) and show it on the
        Config screen, to edit and start as a new run. False (with a message) when it cannot
        be read."""
        from studio.errors import StudioError
        from studio.runs.catalog import config_for_rerun

        app = self.app
        run = Path(run_dir)
        try:
            config = config_for_rerun(run)
        except (StudioError, OSError) as error:
            app.push_screen(ErrorScreen.from_exception(f"Cannot re-run {run.name}", error))
            return False
        # Not the run's config.yaml: saving must never write into an old run.
        app.studio.config_file = None
        app.studio.config_file_saved = None
        app.set_config(config)
        app.switch_mode("config")
        app.notify(
            f"the config of {run.name} is loaded: edit it here, then start it on Train (key 3)",
            markup=False,
        )
        return True

    def _session_options(self) -> dict[str, Any]:
        services = self.app.services
        return {"base_dir": services.workdir, "telemetry_interval": services.telemetry_interval}

    def _replace_run(self, monitor: RunMonitor, control: Controls) -> None:
        """Make `monitor` the run every screen shows; a run followed until now is let go (its
        messages still queued are dropped: they name the old monitor)."""
        if self.attached is not None:
            self.attached.close()
            self.attached = None
        self.resumed_run = None  # resume_run names its run again after this
        self.monitor, self.control = monitor, control
        self.changed.publish(monitor)

    def _train(
        self,
        make_session: SessionFactory,
        monitor: RunMonitor,
        control: TrainingControl,
        history_from: Path | None = None,
    ) -> None:
        """Every run this studio trains (new, resumed, relaunched), on the app's trainer
        worker: one at a time, and a failure reaches the app's one worker-error handler."""
        from studio.ui.runs.launch import train_session

        self.app.run_worker(
            partial(train_session, self.app, make_session, monitor, control, history_from),
            name="trainer",
            group=TRAINER_GROUP,
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    # ---------------------------------------------------------------- control

    def _control(self, command: str, done: str | None = None) -> None:
        """Send pause / resume / stop / save to the run: this process's trainer, or another
        process's through its run folder (which may be unwritable or gone)."""
        app = self.app
        if self.control is None or not self.training_active:
            app.notify("no run is training", severity="warning", markup=False)
            return
        try:
            getattr(self.control, command)()
        except OSError as error:
            app.notify(
                f"cannot reach the run: {error.strerror or error}",
                title="Run control",
                severity="error",
                markup=False,
            )
            return
        if done:
            app.notify(done, markup=False)

    def pause_training(self) -> None:
        self._control("pause", "pausing at the end of this step")

    def resume_training(self) -> None:
        self._control("resume")

    def stop_training(self) -> None:
        self._control("stop", "stopping after this step; the adapter will be saved")

    def save_checkpoint_now(self) -> None:
        self._control("request_save", "a checkpoint will be written at the end of this step")

    # ---------------------------------------------------------------- news of the run

    def handle(self, message: RunMessage) -> None:
        """A message from the trainer or follower thread (delivered to the app)."""
        if message.monitor is not self.monitor:
            return  # a run the studio no longer shows
        if isinstance(message, RunProgress):
            message.monitor.notification_read()
            self._progress.request()
        elif isinstance(message, RunStateChanged):
            self.changed.publish(message.monitor)
        elif isinstance(message, RunFailed):
            error = message.error
            title = "Training failed" + (f" at step {error.step}" if error.step else "")
            self.app.push_screen(
                ErrorScreen(f"{title} ({error.kind})", error.message, error.advice)
            )
        elif isinstance(message, RunCompleted):
            self._completed(message)

    def _publish_progress(self) -> None:
        if self.monitor is not None:
            self.changed.publish(self.monitor)

    def _completed(self, message: RunCompleted) -> None:
        app = self.app
        summary = message.summary
        if summary.run_dir:
            app.studio.last_run_dir = summary.run_dir
        if summary.state is RunState.FINISHED:
            where = app.services.display(summary.adapter_dir or summary.run_dir)
            app.notify(f"run finished after {summary.steps} steps; saved to {where}", markup=False)
        elif summary.state is RunState.STOPPED:
            app.notify(f"run stopped after {summary.steps} steps", markup=False)
        if self.monitor is not None:
            self.changed.publish(self.monitor)

    def trainer_crashed(self, error: BaseException) -> None:
        """The trainer worker raised around the session (which reports its own failures):
        mark the run failed so no screen keeps saying it is training."""
        if self.monitor is not None:
            self.monitor.record(StateChanged(RunState.FAILED, f"crashed: {error}"))
            self.changed.publish(self.monitor)
