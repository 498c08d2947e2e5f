"""Typed events the engine emits while a run prepares, trains and ends.

Subscribers (the headless progress bar, the TUI, the run-directory writers) receive them on
the trainer's thread and must return quickly; the TUI turns them into Textual messages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class RunState(str, Enum):
    PREPARING = "preparing"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (RunState.FINISHED, RunState.STOPPED, RunState.FAILED)


@dataclass(frozen=True)
class RunEvent:
    """Base of every event; `time` is the wall-clock time it was made."""

    time: float = field(default_factory=time.time, kw_only=True)


@dataclass(frozen=True)
class StateChanged(RunEvent):
    state: RunState
    message: str = ""


@dataclass(frozen=True)
class PreparationProgress(RunEvent):
    """How far the encoding of a run's data has come (published while the run prepares)."""

    stage: str  # what is being encoded: "train set", "eval set"
    done: int  # records encoded so far
    total: int
    elapsed_seconds: float
    eta_seconds: float | None = None

    @property
    def text(self) -> str:
        share = self.done / self.total if self.total else 1.0
        rate = self.done / self.elapsed_seconds if self.elapsed_seconds > 0 else None
        parts = [f"encoding {self.stage}: {self.done:,} / {self.total:,} records ({share:.0%})"]
        if rate:
            parts.append(f"{rate:,.0f} records/s")
        if self.eta_seconds is not None and self.done < self.total:
            minutes, seconds = divmod(round(self.eta_seconds), 60)
            parts.append(f"ETA {minutes}:{seconds:02d}" if minutes else f"ETA {seconds} s")
        return ", ".join(parts)


@dataclass(frozen=True)
class StepMetrics(RunEvent):
    """One logged training step."""

    step: int
    max_steps: int
    epoch: float
    loss: float | None
    learning_rate: float | None
    grad_norm: float | None = None
    tokens_per_second: float | None = None
    elapsed_seconds: float = 0.0
    eta_seconds: float | None = None
    # Other numbers the trainer logged (DPO rewards, margins, accuracies, ...).
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalMetrics(RunEvent):
    step: int
    epoch: float
    loss: float | None
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LogLine(RunEvent):
    text: str
    level: str = "info"  # info, warning, error


@dataclass(frozen=True)
class TelemetryEvent(RunEvent):
    """A telemetry snapshot (see studio.telemetry) as plain data."""

    snapshot: dict[str, Any]


@dataclass(frozen=True)
class RunError(RunEvent):
    """The run failed; `kind` is e.g. 'out_of_memory', 'data', 'config', 'internal'."""

    kind: str
    message: str
    advice: tuple[str, ...] = ()
    step: int | None = None


@dataclass(frozen=True)
class RunFinished(RunEvent):
    state: RunState
    run_dir: str
    steps: int
    final_loss: float | None
    best_eval_loss: float | None
    adapter_dir: str | None
    duration_seconds: float


@dataclass(frozen=True)
class SampleAnswer:
    prompt: str
    reply: str


@dataclass(frozen=True)
class SampleGenerations(RunEvent):
    """The model's answers to the run's sample prompts at one step: watch it learn."""

    step: int
    answers: tuple[SampleAnswer, ...]


Subscriber = Callable[[RunEvent], None]


class EventBus:
    """Delivers events to subscribers; a failing subscriber never breaks the run."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self.subscriber_errors: list[BaseException] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: RunEvent) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception as error:
                self.subscriber_errors.append(error)
