"""Checkpoints and resume: a resumed run continues exactly, a failed save costs nothing, and an
out-of-memory run is triaged and relaunched from its last checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.config import load_config
from studio.engine import EventBus, RunState, StepMetrics, TrainingControl
from studio.engine.checkpoints import last_complete_checkpoint, list_checkpoints
from studio.engine.session import TrainingSession
from studio.runs import diagnose, read_run, relaunch
from tests.conftest import SAMPLE_DATA
from tests.support.cli import studio_process

QUICKSTART = SAMPLE_DATA / "configs" / "quickstart.yaml"


def quick_config(runs: Path, name: str, *extra: str):
    return load_config(
        QUICKSTART,
        [
            f"output.runs_dir={runs}",
            f"output.run_name={name}",
            "training.max_steps=20",
            "training.logging_steps=1",
            "training.save_steps=4",
            "training.save_total_limit=2",
            *extra,
        ],
    )


def train_losses(run: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    steps = [record["step"] for record in records if record["type"] == "train"]
    assert steps == sorted(set(steps)), f"steps repeat or go back: {steps}"
    return {record["step"]: record["loss"] for record in records if record["type"] == "train"}


def stop_at(step: int) -> tuple[EventBus, TrainingControl]:
    bus, control = EventBus(), TrainingControl()

    def watch(event) -> None:
        if isinstance(event, StepMetrics) and event.step >= step:
            control.stop()

    bus.subscribe(watch)
    return bus, control


@pytest.mark.slow
def test_stopped_run_resumed_from_the_cli_continues_exactly(tmp_path: Path) -> None:
    whole = TrainingSession(quick_config(tmp_path, "whole"), telemetry_interval=None).run()
    assert whole.state is RunState.FINISHED
    # Periodic checkpoints, the newest two kept, each marked complete.
    assert [(c.step, c.complete) for c in list_checkpoints(tmp_path / "whole")] == [
        (16, True),
        (20, True),
    ]

    bus, control = stop_at(8)
    stopped = TrainingSession(quick_config(tmp_path, "part"), bus, control).run()
    assert stopped.state is RunState.STOPPED and stopped.steps < 20
    stop_step = stopped.steps
    assert last_complete_checkpoint(tmp_path / "part").step == stop_step  # saved on stop
    assert read_run(tmp_path / "part").status == "stopped"

    result = studio_process("train", "--resume", str(tmp_path / "part"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"resuming from checkpoint-{stop_step} at step {stop_step}" in result.stdout

    expected, resumed = train_losses(tmp_path / "whole"), train_losses(tmp_path / "part")
    assert list(resumed) == list(range(1, 21))  # each step once, the stop step included
    for step in range(stop_step + 1, 21):
        assert resumed[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step
    status = json.loads((tmp_path / "part" / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 20
    assert [entry["from_step"] for entry in status["resumes"]] == [stop_step]
    assert (tmp_path / "part" / "adapter" / "adapter_model.safetensors").exists()


@pytest.mark.slow
def test_a_failed_save_leaves_the_previous_checkpoint_whole(tmp_path: Path, monkeypatch) -> None:
    from transformers import Trainer

    real_save = Trainer._save_rng_state
    saves = []

    def failing_save(self, output_dir):
        saves.append(output_dir)
        if len(saves) == 2:  # the second checkpoint dies half-written
            raise OSError(28, "No space left on device")
        return real_save(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_rng_state", failing_save)
    failed = TrainingSession(quick_config(tmp_path, "crash"), telemetry_interval=None).run()
    monkeypatch.undo()
    run = tmp_path / "crash"
    assert failed.state is RunState.FAILED
    assert [(c.step, c.complete) for c in list_checkpoints(run)] == [(4, True), (8, False)]
    good = last_complete_checkpoint(run)
    assert good is not None and good.step == 4

    # The previous checkpoint loads with plain peft ...
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from studio.models.tiny import ensure_tiny_model

    base = AutoModelForCausalLM.from_pretrained(ensure_tiny_model())
    PeftModel.from_pretrained(base, str(good.path))
    # ... and the run goes on from it; the half-written one is cleared away.
    resumed = TrainingSession.resume(run, telemetry_interval=None).run()
    assert resumed.state is RunState.FINISHED
    assert list(train_losses(run)) == list(range(1, 21))
    assert all(c.complete for c in list_checkpoints(run))


@pytest.mark.slow
def test_out_of_memory_is_triaged_and_relaunched_from_the_last_checkpoint(
    tmp_path: Path, monkeypatch
) -> None:
    import torch
    from transformers import Trainer

    real_step = Trainer.training_step

    def step_that_runs_out(self, *args, **kwargs):
        if self.state.global_step == 6:  # the 7th step
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", step_that_runs_out)
    config = quick_config(tmp_path, "oom", "training.save_steps=5")
    failed = TrainingSession(config, telemetry_interval=0.2).run()
    monkeypatch.undo()
    run = tmp_path / "oom"
    assert failed.state is RunState.FAILED

    triage = diagnose(run)
    assert triage is not None
    assert triage.step == 7 and triage.last_checkpoint == 5
    assert triage.batch_shape is not None and triage.batch_shape[0] == 8
    assert triage.memory_series == "process RSS" and triage.peak_bytes
    keys = [choice.key for choice in triage.choices]
    assert keys[:3] == ["qlora", "smaller_batch", "gradient_checkpointing"]
    smaller = triage.choice("smaller_batch")
    assert smaller.overrides == {"training.batch_size": 4, "training.gradient_accumulation": 2}
    assert "checkpoint-5" in triage.describe()
    assert read_run(run).error_kind == "out_of_memory"
    shown = studio_process("runs", "triage", str(run))
    assert shown.returncode == 0 and "at step 7 of 20" in shown.stdout, shown.stderr
    assert "[smaller_batch] batch 4 x 2 accumulation" in shown.stdout

    result = relaunch(run, "smaller_batch", telemetry_interval=None)
    assert result.state is RunState.FINISHED and result.steps == 20
    relaunched = load_config(run / "config.yaml")
    assert (relaunched.training.batch_size, relaunched.training.gradient_accumulation) == (4, 2)
    assert list(train_losses(run)) == list(range(1, 21))
    assert "resuming from checkpoint-5 at step 5" in (run / "log.txt").read_text()
    assert diagnose(run) is None  # finished now


def test_resume_refuses_a_finished_or_running_run(tmp_path: Path) -> None:
    from studio.errors import ConfigError

    run = tmp_path / "done"
    run.mkdir()
    (run / "config.yaml").write_text(QUICKSTART.read_text())
    (run / "status.json").write_text(json.dumps({"state": "finished"}))
    with pytest.raises(ConfigError, match="already finished"):
        TrainingSession.resume(run)
    (run / "status.json").write_text(
        json.dumps({"state": "running", "pid": __import__("os").getpid(), "process_started": 1e10})
    )
    with pytest.raises(ConfigError, match="still running"):
        TrainingSession.resume(run)


def test_checkpoints_are_periodic_unless_the_run_is_short() -> None:
    """With save_steps left empty a crash costs at most about a fifth of the run."""
    from studio.config import RunConfig
    from studio.engine.arguments import argument_values, auto_save_steps
    from studio.models.loading import DevicePlan

    assert auto_save_steps(49) is None  # a short run saves at the end and on stop only
    assert auto_save_steps(150) == 30
    assert auto_save_steps(60) == 25
    assert auto_save_steps(100_000) == 1000
    plan = DevicePlan(device="cpu", dtype_name="float32", bf16=False, fp16=False)
    config = RunConfig.model_validate({"training": {"max_steps": 300}})
    values = argument_values(config, Path("out"), plan, examples=40, has_eval=False)
    assert (values["save_strategy"], values["save_steps"]) == ("steps", 60)
    chosen = RunConfig.model_validate({"training": {"max_steps": 300, "save_steps": 7}})
    values = argument_values(chosen, Path("out"), plan, examples=40, has_eval=False)
    assert values["save_steps"] == 7
