"""A training session: check the data, load the model, apply the method, train, save.

`TrainingSession.run()` blocks; call it on a worker thread (the TUI) or the main thread
(headless). It never raises for a failed run: it publishes a `RunError` and returns the
`RunFinished` summary, and the run directory records what happened.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any

from studio.config import RunConfig
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
from studio.engine.run_dir import RunDirectory
from studio.errors import StudioError


class TrainingSession:
    def __init__(
        self,
        config: RunConfig,
        bus: EventBus | None = None,
        control: TrainingControl | None = None,
        *,
        base_dir: Path | None = None,
        telemetry_interval: float | None = 1.0,
    ) -> None:
        self.config = config
        self.bus = bus or EventBus()
        self.control = control or TrainingControl()
        self.base_dir = base_dir
        self.telemetry_interval = telemetry_interval
        self.run_dir: RunDirectory | None = None
        self.model: Any = None
        self.tokenizer: Any = None
        self._started = time.monotonic()
        self._state = RunState.PREPARING
        self._step = 0

    # ------------------------------------------------------------- events

    def publish(self, event: RunEvent) -> None:
        self._record(event)
        self.bus.publish(event)

    def log(self, text: str, level: str = "info") -> None:
        self.publish(LogLine(text=text, level=level))

    def _record(self, event: RunEvent) -> None:
        run = self.run_dir
        if run is None:
            return
        if isinstance(event, StepMetrics):
            self._step = event.step
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
                    **event.extra,
                },
            )
            run.write_status(step=event.step, max_steps=event.max_steps, loss=event.loss)
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

    # ------------------------------------------------------------- the run

    def run(self) -> RunFinished:
        self._started = time.monotonic()
        adapter_dir: str | None = None
        trainer_callback = None
        sampler = None
        try:
            self.run_dir = RunDirectory.create(self.config)
            self.run_dir.write_status(
                state=RunState.PREPARING.value,
                pid=os.getpid(),
                started=time.time(),
                run_name=self.run_dir.name,
            )
            self.publish(StateChanged(RunState.PREPARING, f"run directory {self.run_dir.path}"))
            sampler = self._start_telemetry()
            from studio.engine.training import train

            trainer_callback = train(self)
            adapter_dir = (
                str(self.run_dir.adapter_dir) if self.run_dir.adapter_dir.exists() else None
            )
            final = RunState.STOPPED if trainer_callback.stopped_by_user else RunState.FINISHED
        except Exception as error:
            final = RunState.FAILED
            failure = classify_failure(error, self.config)
            if self.run_dir is not None and not isinstance(error, StudioError):
                self.run_dir.log(traceback.format_exc(), "error")
            self.publish(
                RunError(
                    kind=failure.kind,
                    message=failure.message,
                    advice=failure.advice,
                    step=self._step or None,
                )
            )
        if sampler is not None:
            sampler.close()
        duration = time.monotonic() - self._started
        final_loss = trainer_callback.last_loss if trainer_callback else None
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
        if self.run_dir is not None:
            self.run_dir.write_status(
                state=final.value,
                finished=time.time(),
                duration_seconds=round(duration, 2),
                final_loss=final_loss,
                best_eval_loss=best_eval,
                adapter_dir=adapter_dir,
            )
        self.publish(StateChanged(final, f"after {self._step} steps"))
        self.publish(summary)
        return summary

    def _start_telemetry(self) -> Any:
        """Sample GPU / host memory about once a second into telemetry.jsonl and events."""
        if self.telemetry_interval is None:
            return None
        from studio.telemetry import TelemetrySampler

        def on_snapshot(snapshot: Any) -> None:
            self.publish(TelemetryEvent(snapshot=snapshot.to_dict()))

        sampler = TelemetrySampler(self.telemetry_interval, on_snapshot=on_snapshot)
        sampler.start()
        return sampler


def run_training(
    config: RunConfig, bus: EventBus | None = None, control: TrainingControl | None = None
) -> RunFinished:
    """Run one training session to its end on the calling thread."""
    return TrainingSession(config, bus, control).run()
