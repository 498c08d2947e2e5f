"""The training engine: run directory, trainer thread, events, control. No UI imports here."""

from studio.engine.control import TrainingControl
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

__all__ = [
    "EvalMetrics",
    "EventBus",
    "LogLine",
    "RunError",
    "RunEvent",
    "RunFinished",
    "RunState",
    "StateChanged",
    "StepMetrics",
    "TelemetryEvent",
    "TrainingControl",
]
