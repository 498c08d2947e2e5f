"""Evaluation during training: the best eval loss so far, its checkpoint, and early stopping.

The eval numbers themselves reach the event stream through `EngineCallback.on_log`; this
callback records which evaluation was best in `status.json` (`best_eval_loss`,
`best_eval_step`, and `best_checkpoint` when a checkpoint was written at that step) and stops
the run when eval loss has not improved for `training.early_stopping_patience` evaluations.
The Trainer itself is told `metric_for_best_model="eval_loss"` (see `arguments.py`), so
checkpoint rotation never deletes the best checkpoint.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from studio.errors import ConfigError

if TYPE_CHECKING:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from studio.engine.session import TrainingSession
    from studio.engine.training import TrainingJob


class EvaluationTracker(TrainerCallback):
    def __init__(self, session: TrainingSession, patience: int | None) -> None:
        self.session = session
        self.patience = patience
        self.best_loss: float | None = None
        self.best_step: int | None = None
        self.evaluations_without_improvement = 0
        self.stopped_early_at: int | None = None

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> TrainerControl:
        loss = (metrics or {}).get("eval_loss")
        if loss is None or not math.isfinite(loss):
            return control
        step = state.global_step
        if self.best_loss is None or loss < self.best_loss:
            self.best_loss, self.best_step = float(loss), step
            self.evaluations_without_improvement = 0
            self._status(best_eval_loss=self.best_loss, best_eval_step=step)
            self.session.log(f"eval loss {loss:.4f} at step {step}: best so far")
            return control
        self.evaluations_without_improvement += 1
        self.session.log(
            f"eval loss {loss:.4f} at step {step}: no better than {self.best_loss:.4f} "
            f"(step {self.best_step}) for {self.evaluations_without_improvement} evaluation(s)"
        )
        if self.patience and self.evaluations_without_improvement >= self.patience:
            control.should_training_stop = True
            self.stopped_early_at = step
            self._status(stopped_early_at=step)
            self.session.log(
                f"early stopping at step {step}: eval loss has not improved for "
                f"{self.patience} evaluation(s); best {self.best_loss:.4f} at step "
                f"{self.best_step}"
            )
        return control

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        if state.best_model_checkpoint:
            self._status(best_checkpoint=state.best_model_checkpoint)
        return control

    def _status(self, **fields: Any) -> None:
        run = getattr(self.session, "run_dir", None)
        if run is not None:
            run.write_status(**fields)


def evaluation_callbacks(job: TrainingJob, has_eval: bool) -> list[TrainerCallback]:
    """The evaluation callbacks for a trainer; ConfigError if early stopping has no eval data."""
    patience = job.config.training.early_stopping_patience
    if not has_eval:
        if patience:
            raise ConfigError(
                "training.early_stopping_patience needs an eval split to watch",
                advice="set data.eval_fraction (e.g. 0.1) or data.eval_path, or remove "
                "early_stopping_patience",
            )
        return []
    return [EvaluationTracker(job.session, patience)]
