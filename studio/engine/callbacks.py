"""The bridge between the transformers Trainer loop and ftstudio: events out, control in."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from studio.engine.control import TrainingControl
from studio.engine.events import EvalMetrics, RunState, StateChanged, StepMetrics

if TYPE_CHECKING:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from studio.engine.session import TrainingSession

# Keys the Trainer logs that are bookkeeping, not metrics worth a plot.
_SKIP_KEYS = {"epoch", "step", "total_flos", "train_runtime", "num_input_tokens_seen"}


def _as_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class EngineCallback(TrainerCallback):
    def __init__(
        self,
        publish: Callable[[Any], None],
        control: TrainingControl,
        tokens_seen: Callable[[], int],
        step_offset: int = 0,
    ) -> None:
        self.publish = publish
        self.user_control = control
        self.tokens_seen = tokens_seen
        self.started = time.monotonic()
        self.first_step_time: float | None = None
        self.first_step: int = 0
        self.last_tokens = 0
        self.last_log_time = self.started
        self.best_eval_loss: float | None = None
        self.last_loss: float | None = None
        self.stopped_by_user = False
        self.requested_saves: set[int] = set()
        """Steps whose checkpoint the user asked for (save now): kept out of pruning."""

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.started = time.monotonic()
        self.last_log_time = self.started
        self.last_tokens = self.tokens_seen()
        self.first_step = state.global_step
        self.publish(StateChanged(RunState.RUNNING, f"training for {state.max_steps} steps"))

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        if self.user_control.failure is not None:
            raise self.user_control.failure
        if self.first_step_time is None:
            self.first_step_time = time.monotonic()
        if self.user_control.paused and not self.user_control.stop_requested:
            self.publish(StateChanged(RunState.PAUSED, f"paused at step {state.global_step}"))
            paused_at = time.monotonic()
            self.user_control.wait_while_paused()
            # Time spent paused is not training time: keep it out of tokens/s and the ETA.
            pause = time.monotonic() - paused_at
            self.started += pause
            self.last_log_time += pause
            if self.first_step_time is not None:
                self.first_step_time += pause
            if not self.user_control.stop_requested:
                self.publish(StateChanged(RunState.RUNNING, "resumed"))
        if self.user_control.take_save_request():
            control.should_save = True
            self.requested_saves.add(state.global_step)
        if state.max_steps and state.global_step >= state.max_steps:
            # Log the last step whatever logging_steps says: the curve, the summary and the
            # Runs list must end at the step training ended, not the last multiple of it.
            control.should_log = True
        if self.user_control.stop_requested:
            self.stopped_by_user = True
            control.should_training_stop = True
            control.should_save = True
            # Log the steps since the last logged one, so the curve reaches the stop.
            control.should_log = True
            self.publish(StateChanged(RunState.STOPPING, f"stopping at step {state.global_step}"))
        return control

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        logs = dict(logs or {})
        if any(key.startswith("eval_") for key in logs):
            loss = _as_float(logs.pop("eval_loss", None))
            if loss is not None and (self.best_eval_loss is None or loss < self.best_eval_loss):
                self.best_eval_loss = loss
            extra = {
                key.removeprefix("eval_"): number
                for key, value in logs.items()
                if key not in _SKIP_KEYS and (number := _as_float(value)) is not None
            }
            self.publish(
                EvalMetrics(
                    step=state.global_step, epoch=state.epoch or 0.0, loss=loss, extra=extra
                )
            )
            return
        if "loss" not in logs:
            return  # the end-of-training summary; RunFinished carries those numbers
        now = time.monotonic()
        tokens = self.tokens_seen()
        interval = now - self.last_log_time
        tokens_per_second = (tokens - self.last_tokens) / interval if interval > 0 else None
        self.last_tokens, self.last_log_time = tokens, now
        elapsed = now - self.started
        eta = self._eta(state, now)
        loss = _as_float(logs.pop("loss", None))
        self.last_loss = loss
        extra = {
            key: number
            for key, value in logs.items()
            if key not in _SKIP_KEYS
            and key not in ("learning_rate", "grad_norm")
            and (number := _as_float(value)) is not None
        }
        self.publish(
            StepMetrics(
                step=state.global_step,
                max_steps=state.max_steps,
                epoch=state.epoch or 0.0,
                loss=loss,
                learning_rate=_as_float(logs.get("learning_rate")),
                grad_norm=_as_float(logs.get("grad_norm")),
                tokens_per_second=tokens_per_second,
                elapsed_seconds=elapsed,
                eta_seconds=eta,
                extra=extra,
            )
        )

    def _eta(self, state: TrainerState, now: float) -> float | None:
        # Measured from the end of the first step, so model warm-up does not skew it.
        if self.first_step_time is None:
            return None
        done = state.global_step - self.first_step - 1
        if done <= 0:
            return None
        per_step = (now - self.first_step_time) / done
        return per_step * max(state.max_steps - state.global_step, 0)


class RunCallback(TrainerCallback):
    """Run-directory bookkeeping around the Trainer: which step is being trained, complete
    checkpoints (marker, then pruning to the newest `keep`), and the learning-rate schedule
    of a relaunch whose optimizer changed."""

    def __init__(
        self,
        session: TrainingSession,
        keep: int | None,
        restore_schedule_from: Any = None,
        requested_saves: set[int] | None = None,
    ) -> None:
        self.session = session
        self.keep = keep
        self.restore_schedule_from = restore_schedule_from
        self.requested_saves = requested_saves if requested_saves is not None else set()

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        lr_scheduler: Any = None,
        optimizer: Any = None,
        **kwargs: Any,
    ) -> None:
        if self.restore_schedule_from is not None and lr_scheduler is not None:
            import torch

            path = self.restore_schedule_from / "scheduler.pt"
            if path.is_file():
                lr_scheduler.load_state_dict(torch.load(path, weights_only=True))
                if optimizer is not None:
                    for group, rate in zip(
                        optimizer.param_groups, lr_scheduler.get_last_lr(), strict=False
                    ):
                        group["lr"] = rate

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.session.current_step = state.global_step + 1

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        from studio.engine.checkpoints import mark_complete, prune_checkpoints

        if not state.is_world_process_zero:
            return  # in a torchrun group rank 0 keeps the books for everyone

        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            run = self.session.run_dir
            if run is not None:  # the Trainer's files follow the umask; the run's are private
                run.apply_modes(folder)
            requested = state.global_step in self.requested_saves
            mode = run.file_mode if run else None
            mark_complete(folder, state.global_step, mode, requested=requested)
            prune_checkpoints(folder.parent, self.keep, protect=state.best_model_checkpoint)
            self.session.on_checkpoint(state.global_step, folder)


def attach_run_callbacks(trainer: Any, session: TrainingSession) -> None:
    """Hook the run's bookkeeping into a built Trainer (any training type)."""
    # The engine prunes checkpoints itself, after marking the new one complete; the Trainer
    # would delete the previous good one before the new one is known to be whole.
    keep = trainer.args.save_total_limit
    trainer.args.save_total_limit = None
    resume = getattr(session, "resume_point", None)
    restore = None
    if resume is not None and resume.checkpoint is not None and not session.keep_optimizer_state:
        restore = resume.checkpoint.path
    engine = next(
        (c for c in trainer.callback_handler.callbacks if isinstance(c, EngineCallback)), None
    )
    requested = engine.requested_saves if engine is not None else None
    trainer.add_callback(RunCallback(session, keep, restore, requested))
    from studio.engine.samples import attach_samples_callback

    attach_samples_callback(trainer, session)  # the sample prompts, answered every N steps
    collate = trainer.data_collator

    def recording_collator(features: Any) -> Any:
        batch = collate(features)
        ids = batch.get("input_ids") if isinstance(batch, dict) else None
        if ids is not None and hasattr(ids, "shape"):
            session.batch_shape = tuple(int(size) for size in ids.shape)
        return batch

    # The shape of the batch in flight tells an out-of-memory triage what the step was doing.
    if collate is not None and session.config.training_type in ("sft", "pretrain"):
        trainer.data_collator = recording_collator
