"""A training session: check the data, load the model, apply the method, train, save.

`TrainingSession.run()` blocks; call it on a worker thread (the TUI) or the main thread
(headless). It never raises for a failed run: it publishes a `RunError` and returns the
`RunFinished` summary, and the run directory records what happened.

`TrainingSession.resume(run_dir)` makes a session that goes on with a stopped, failed or
interrupted run in its own directory, from its last complete checkpoint: same optimizer,
schedule, RNG and data order, metrics appended after the checkpoint's step.

While it runs, a `Heartbeat` thread keeps status.json's heartbeat fresh and applies commands
that other processes append to control.jsonl (see `remote_control`).
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.config import RunConfig, config_with_changes, dump_config, load_config
from studio.engine.checkpoints import (
    ResumePoint,
    prepare_resume,
    resume_problem,
    resume_view_without_optimizer,
)
from studio.engine.control import TrainingControl
from studio.engine.errors import classify_failure
from studio.engine.events import (
    EvalMetrics,
    EventBus,
    LogLine,
    RunError,
    RunEvent,
    RunFinished,
    RunState,
    StateChanged,
    StepMetrics,
    TelemetryEvent,
)
from studio.engine.liveness import this_host
from studio.engine.parallel_encoding import PreparationStopped
from studio.engine.run_dir import RunDirectory, train_losses, write_atomic
from studio.errors import ConfigError, StudioError

if TYPE_CHECKING:
    from studio.engine.data_preparation import EarlyPreparation
    from studio.engine.encoding_while_reading import EncodingWhileReading
    from studio.telemetry import TelemetrySampler, TelemetrySnapshot

# What a relaunch keeps from the last checkpoint (see errors.MemoryChoice.carry).
CARRY_EVERYTHING, CARRY_WEIGHTS = "everything", "weights"


def resumable_run(
    run_dir: str | Path, changes: Mapping[str, Any] | None
) -> tuple[RunDirectory, RunConfig]:
    """The run folder to go on with and its config with `changes` applied; ConfigError when
    the run cannot be resumed (one in-process session or a process group alike)."""
    run = RunDirectory.open(run_dir)
    problem = resume_problem(run)
    if problem:
        raise ConfigError(
            f"cannot resume: {problem}",
            advice="resume a stopped, failed or interrupted run; `ftstudio runs` lists them",
        )
    config = load_config(run.config_path)
    if changes:
        config = config_with_changes(config, changes)
    return run, config


def begin_resume(
    run: RunDirectory, config: RunConfig, changes: Mapping[str, Any], **status: Any
) -> tuple[dict[str, Any], ResumePoint]:
    """Ready a stopped run folder to go on (one process or a torchrun group alike): the
    status it had, and the checkpoint to start from. Incomplete checkpoints are tidied, the
    config (with any changes) is written back, and status.json records the resume."""
    problem = resume_problem(run)
    if problem:
        raise ConfigError(f"cannot resume: {problem}")
    previous = run.read_status()
    point = prepare_resume(run)
    write_atomic(run.config_path, dump_config(config))
    run.create_control_file()
    resumes = list(previous.get("resumes") or [])
    resumes.append({"time": time.time(), "from_step": point.step, "changes": changes})
    run.write_status(
        state=RunState.PREPARING.value,
        step=point.step,
        resumes=resumes,
        error=None,
        finished=None,
        adapter_dir=None,
        **status,
    )
    return previous, point


class TrainingSession:
    def __init__(
        self,
        config: RunConfig,
        bus: EventBus | None = None,
        control: TrainingControl | None = None,
        *,
        base_dir: Path | None = None,
        telemetry_interval: float | None = 1.0,
        resume_dir: str | Path | None = None,
        keep_optimizer_state: bool = True,
        changes: Mapping[str, Any] | None = None,
        rank: Any = None,
    ) -> None:
        self.config = config
        # A studio.engine.distributed.RankContext when this is one rank of a torchrun group.
        self.rank = rank
        # (level, line) pairs about the device choice, logged once the run folder is open.
        self.device_notes: list[tuple[str, str]] = []
        self.bus = bus or EventBus()
        self.control = control or TrainingControl()
        self.base_dir = base_dir
        self.telemetry_interval = telemetry_interval
        self.resume_dir = Path(resume_dir) if resume_dir is not None else None
        self.keep_optimizer_state = keep_optimizer_state
        self.changes = dict(changes or {})
        self.run_dir: RunDirectory | None = None
        self.model: Any = None
        self.tokenizer: Any = None
        # The data being encoded while the model loads; cancelled if the run ends first.
        self.early_preparation: EarlyPreparation | None = None
        # The encoding begun while the data was read, until the preparation takes it over.
        self.encoding_while_reading: EncodingWhileReading | None = None
        # Set when resuming: the whole checkpoint it starts from, and the folder the Trainer
        # reads (the checkpoint, or a view of it without optimizer state).
        self.resume_point: ResumePoint | None = None
        self.resume_from: str | None = None
        # The step being trained and the shape of its batch, for out-of-memory triage.
        self.current_step = 0
        self.batch_shape: tuple[int, ...] | None = None
        self._started = time.monotonic()
        self._state = RunState.PREPARING
        self._step = 0
        self._best_loss: float | None = None
        self._last_loss: float | None = None
        self._previous_duration = 0.0
        # The first run-folder write that failed (a full disk, a removed folder), if any.
        self.write_error: OSError | None = None

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        bus: EventBus | None = None,
        control: TrainingControl | None = None,
        *,
        changes: Mapping[str, Any] | None = None,
        carry: str = CARRY_EVERYTHING,
        base_dir: Path | None = None,
        telemetry_interval: float | None = 1.0,
    ) -> TrainingSession:
        """A session that goes on with a stopped / failed / interrupted run in its directory.

        `changes` (dotted keys) edit its config first, e.g. a smaller batch after an
        out-of-memory error; with `carry="weights"` the optimizer state starts fresh (for a
        change of optimizer). Raises ConfigError when the run cannot be resumed."""
        if carry not in (CARRY_EVERYTHING, CARRY_WEIGHTS):
            raise ValueError(f"carry must be '{CARRY_EVERYTHING}' or '{CARRY_WEIGHTS}'")
        run, config = resumable_run(run_dir, changes)
        return cls(
            config,
            bus,
            control,
            base_dir=base_dir,
            telemetry_interval=telemetry_interval,
            resume_dir=run.path,
            keep_optimizer_state=carry == CARRY_EVERYTHING,
            changes=changes,
        )

    # ------------------------------------------------------------- events

    def publish(self, event: RunEvent) -> None:
        try:
            self._record(event)
        except OSError as error:
            # A full disk, a removed run folder: the event still reaches the screen, and the
            # run goes on (a checkpoint that cannot be written fails it with advice).
            self._write_failed(error)
        self.bus.publish(event)

    def _write_failed(self, error: OSError) -> None:
        """Say once that the run folder cannot be written; never raises."""
        removed = self.run_dir is not None and not self.run_dir.config_path.exists()
        if removed and self.control.failure is None:
            self.control.fail(error)  # the run folder was removed: end the run
        if self.write_error is None:
            self.write_error = error
            where = self.run_dir.path if self.run_dir else "the run folder"
            reason = error.strerror or str(error)
            self.bus.publish(LogLine(text=f"cannot write to {where}: {reason}", level="warning"))

    def _guarded(self, write: Any, *args: Any, **fields: Any) -> bool:
        """Run one run-folder write on the failure path; False (and noted) when it fails."""
        try:
            write(*args, **fields)
        except OSError as error:
            self._write_failed(error)
            return False
        return True

    def log(self, text: str, level: str = "info") -> None:
        self.publish(LogLine(text=text, level=level))

    @property
    def records_run(self) -> bool:
        """Whether this process writes the run folder (not a torchrun rank other than 0)."""
        return self.rank is None or self.rank.is_main

    def _record(self, event: RunEvent) -> None:
        run = self.run_dir
        if run is None:
            return
        if not self.records_run:
            if isinstance(event, StepMetrics):
                self._step = event.step
            self.rank.record(event)
            return
        if isinstance(event, StepMetrics):
            self._step = event.step
            if event.loss is not None:
                self._last_loss = event.loss
                if self._best_loss is None or event.loss < self._best_loss:
                    self._best_loss = event.loss
            run.append_jsonl(
                run.metrics_path,
                {
                    "type": "train",
                    "time": event.time,
                    "step": event.step,
                    "max_steps": event.max_steps,
                    "epoch": round(event.epoch, 4),
                    "loss": event.loss,
                    "learning_rate": event.learning_rate,
                    "grad_norm": event.grad_norm,
                    "tokens_per_second": event.tokens_per_second,
                    "elapsed_seconds": round(event.elapsed_seconds, 3),
                    "eta_seconds": event.eta_seconds,
                    **event.extra,
                },
            )
            run.write_status(
                step=event.step,
                max_steps=event.max_steps,
                loss=event.loss,
                best_loss=self._best_loss,
            )
        elif isinstance(event, EvalMetrics):
            run.append_jsonl(
                run.metrics_path,
                {
                    "type": "eval",
                    "time": event.time,
                    "step": event.step,
                    "epoch": round(event.epoch, 4),
                    "loss": event.loss,
                    **event.extra,
                },
            )
        elif isinstance(event, TelemetryEvent):
            run.append_jsonl(run.telemetry_path, {"time": event.time, **event.snapshot})
        elif isinstance(event, LogLine):
            run.log(event.text, event.level)
        elif isinstance(event, StateChanged):
            self._state = event.state
            run.log(f"state: {event.state.value} {event.message}".rstrip())
            run.write_status(state=event.state.value)
        elif isinstance(event, RunError):
            run.log(f"{event.kind}: {event.message}", "error")
            for advice in event.advice:
                run.log(f"  try: {advice}", "error")

    def on_checkpoint(self, step: int, folder: Path) -> None:
        """Called by the engine's callback once a checkpoint is complete on disk."""
        if self.run_dir is not None:
            self.run_dir.write_status(last_checkpoint=step)
        self.log(f"checkpoint saved at step {step}: {folder.name}")

    # ------------------------------------------------------------- the run

    def run(self) -> RunFinished:
        self._started = time.monotonic()
        adapter_dir: str | None = None
        trainer_callback = None
        sampler = None
        heartbeat = None
        try:
            self.run_dir = self._open_run_directory()
            from studio.engine.heartbeat import Heartbeat

            if self.records_run:
                heartbeat = Heartbeat(
                    self.run_dir,
                    self.control,
                    on_command=self._on_command,
                    on_refused=self._on_refused_commands,
                )
                heartbeat.start()
            self.publish(StateChanged(RunState.PREPARING, f"run directory {self.run_dir.path}"))
            self._log_resume()
            for level, line in self.device_notes:
                self.log(line, level)
            sampler = self._start_telemetry()
            from transformers import set_seed

            # Same seed, same run: the method's initial weights follow training.seed too.
            set_seed(self.config.training.seed)
            from studio.engine.training import train

            trainer_callback = train(self)
            adapter_dir = (
                str(self.run_dir.adapter_dir) if self.run_dir.adapter_dir.exists() else None
            )
            final = RunState.STOPPED if trainer_callback.stopped_by_user else RunState.FINISHED
            error_record = None
        except PreparationStopped:
            # Stopped before the first step: nothing trained, nothing half-cached.
            final, error_record = RunState.STOPPED, None
            self.log("stopped while preparing the data; nothing was trained")
        except Exception as error:
            final = RunState.FAILED
            run_path = self.run_dir.path if self.run_dir else None
            failure = classify_failure(error, self.config, run_path=run_path)
            if self.run_dir is not None and not isinstance(error, StudioError):
                if self.records_run:
                    logged = self._guarded(self.run_dir.log, traceback.format_exc(), "error")
                    if not logged and failure.kind == "internal":
                        failure = replace(failure, advice=())  # the traceback is not in log.txt
                else:
                    self.rank.record(LogLine(text=traceback.format_exc(), level="error"))
            elif self.run_dir is None and failure.kind == "internal":
                failure = replace(failure, advice=())  # no run folder, so no log.txt
            step = self.current_step or self._step or None
            error_record = {
                "kind": failure.kind,
                "message": failure.message,
                "advice": list(failure.advice),
                "step": step,
                "batch_shape": list(self.batch_shape) if self.batch_shape else None,
            }
            self.publish(
                RunError(
                    kind=failure.kind, message=failure.message, advice=failure.advice, step=step
                )
            )
        if self.early_preparation is not None:
            # A run that failed while its data was being encoded: stopped, nothing cached.
            self.early_preparation.cancel()
            self.early_preparation = None
        if self.encoding_while_reading is not None:
            from studio.engine.data_preparation import abandon_encoding_while_reading

            abandon_encoding_while_reading(self)
        if sampler is not None:
            sampler.close()
        if heartbeat is not None:
            self._guarded(heartbeat.close)
        # Rounded as status.json keeps it, so every screen shows the same duration.
        duration = round(time.monotonic() - self._started + self._previous_duration, 2)
        final_loss = self._last_loss
        if trainer_callback is not None and trainer_callback.last_loss is not None:
            final_loss = trainer_callback.last_loss
        best_eval = trainer_callback.best_eval_loss if trainer_callback else None
        summary = RunFinished(
            state=final,
            run_dir=str(self.run_dir.path) if self.run_dir else "",
            steps=self._step,
            final_loss=final_loss,
            best_eval_loss=best_eval,
            adapter_dir=adapter_dir,
            duration_seconds=duration,
        )
        if self.run_dir is not None and self.records_run:
            self._write_final_status(
                state=final.value,
                finished=time.time(),
                duration_seconds=round(duration, 2),
                final_loss=final_loss,
                best_loss=self._best_loss,
                best_eval_loss=best_eval,
                adapter_dir=adapter_dir,
                error=error_record,
            )
        self.publish(StateChanged(final, f"after {self._step} steps"))
        self.publish(summary)
        return summary

    def _write_final_status(self, **fields: Any) -> None:
        """The end of the run in status.json, which must never be left saying `running`.

        On a full disk the usual atomic rewrite (a new file, then a rename) has no room: the
        fallback overwrites the old file in place with the few fields that matter, which fit
        in the blocks the old, longer file frees."""
        run = self.run_dir
        assert run is not None
        if self._guarded(run.write_status, **fields):
            return
        essential = {key: fields.get(key) for key in ("state", "finished", "error", "final_loss")}
        status = {**run.read_status(), **essential, "updated": time.time()}
        try:
            with run.status_path.open("r+", encoding="utf-8") as stream:
                stream.truncate(0)
                stream.write(json.dumps(status))
        except OSError as error:
            self._write_failed(error)

    def _open_run_directory(self) -> RunDirectory:
        if self.rank is not None:
            from studio.engine.distributed import open_rank_run_directory

            return open_rank_run_directory(self)
        process = {"pid": os.getpid(), "host": this_host(), "process_started": time.time()}
        if self.resume_dir is None:
            status = {"state": RunState.PREPARING.value, "started": time.time(), **process}
            return RunDirectory.create(self.config, status=status)
        run = RunDirectory.open(self.resume_dir)
        self._best_loss, self._last_loss = train_losses(run.metrics_path)
        previous, point = begin_resume(
            run,
            self.config,
            self.changes,
            run_name=run.name,
            best_loss=self._best_loss,
            loss=self._last_loss,
            **process,
        )
        self.resume_point = point
        if point.checkpoint is not None:
            folder = point.checkpoint.path
            if not self.keep_optimizer_state:
                folder = resume_view_without_optimizer(run, point.checkpoint)
            self.resume_from = str(folder)
        self._step = point.step
        self._previous_duration = float(previous.get("duration_seconds") or 0.0)
        return run

    def _log_resume(self) -> None:
        point = self.resume_point
        if point is None:
            return
        for path in point.removed:
            self.log(f"removed incomplete checkpoint {path.name}", "warning")
        for path, problem in point.damaged:
            self.log(f"skipped a damaged checkpoint ({problem}); kept it as {path}", "warning")
        if point.checkpoint is None:
            self.log("no complete checkpoint: training again from step 0", "warning")
        else:
            what = "" if self.keep_optimizer_state else " (optimizer state starts fresh)"
            self.log(f"resuming from {point.checkpoint.path.name} at step {point.step}{what}")
        if self.changes:
            self.log("config changes: " + ", ".join(f"{k}={v}" for k, v in self.changes.items()))

    def _on_command(self, command: str) -> None:
        self.log(f"command from another process: {command}")

    def _on_refused_commands(self, reason: str) -> None:
        self.log(f"commands ignored: {reason}; only this run's user may control it", "warning")

    def _start_telemetry(self) -> TelemetrySampler | None:
        """Sample GPU / host memory about once a second into telemetry.jsonl and events."""
        if self.telemetry_interval is None or not self.records_run:
            return None
        from studio.telemetry import TelemetrySampler

        def on_snapshot(snapshot: TelemetrySnapshot) -> None:
            self.publish(TelemetryEvent(snapshot=snapshot.to_dict()))

        sampler = TelemetrySampler(self.telemetry_interval, on_snapshot=on_snapshot)
        sampler.start()
        return sampler


def run_training(
    config: RunConfig, bus: EventBus | None = None, control: TrainingControl | None = None
) -> RunFinished:
    """Run one training session to its end on the calling thread."""
    return TrainingSession(config, bus, control).run()


def resume_training(
    run_dir: str | Path,
    bus: EventBus | None = None,
    control: TrainingControl | None = None,
    **options: Any,
) -> RunFinished:
    """Resume a run to its end on the calling thread (see `TrainingSession.resume`)."""
    return TrainingSession.resume(run_dir, bus, control, **options).run()
