"""One case of the architecture matrix: train, reload in chat, export, resume, on one
architecture with one method. Shared by the matrix test files (split so that pytest-xdist's
`--dist loadfile` runs them on different workers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio.config import config_from_dict
from studio.engine import EventBus, RunState, StepMetrics, TrainingControl
from studio.engine.checkpoints import last_complete_checkpoint
from studio.engine.session import TrainingSession
from tests.conftest import REPO

# Small settings of each method, sized for 64-wide models.
METHODS: dict[str, dict[str, Any]] = {
    "lora": {"name": "lora", "rank": 4, "alpha": 8, "dropout": 0.0},
    "qlora": {"name": "qlora", "rank": 4, "alpha": 8, "dropout": 0.0},
    "ia3": {"name": "ia3"},
    "full": {"name": "full"},
    "freeze": {"name": "freeze", "trainable_layers": 1, "trainable_patterns": ["lm_head"]},
    "bottleneck": {"name": "bottleneck", "bottleneck_size": 8},
    "prompt_tuning": {"name": "prompt_tuning", "num_virtual_tokens": 4},
    "p_tuning": {"name": "p_tuning", "num_virtual_tokens": 4, "encoder_hidden_size": 16},
    "prefix_tuning": {"name": "prefix_tuning", "num_virtual_tokens": 4},
}
STEPS = 4
STOP_AT = 2


def write_data(folder: Path) -> Path:
    path = folder / "data.jsonl"
    if not path.exists():
        rows = [
            {"instruction": f"Say the number {i}.", "input": "", "output": f"{i} is the number."}
            for i in range(8)
        ]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def run_config(model_dir: Path, method: str, runs: Path, data: Path) -> Any:
    return config_from_dict(
        {
            "model": {"source": str(model_dir)},
            "method": METHODS[method],
            "data": {"path": str(data), "max_length": 48},
            "training": {
                "max_steps": STEPS,
                "batch_size": 2,
                "learning_rate": 0.01,
                "logging_steps": 1,
                "save_steps": 100,
                "seed": 0,
            },
            "output": {"runs_dir": str(runs), "run_name": method},
        }
    )


def trained_tensors(model: Any) -> dict[str, Any]:
    return {
        name: parameter.detach().cpu().clone()
        for name, parameter in model.named_parameters()
        if parameter.requires_grad
    }


def assert_same(expected: dict[str, Any], model: Any, where: str) -> None:
    import torch

    held = dict(model.named_parameters())
    missing = [name for name in expected if name not in held]
    assert not missing, f"{where}: trained tensors absent: {missing[:4]}"
    changed = [
        name
        for name, tensor in expected.items()
        if not torch.equal(held[name].detach().cpu().to(tensor.dtype), tensor)
    ]
    assert not changed, f"{where}: trained tensors differ from what was saved: {changed[:4]}"


def train_until_stopped(config: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Train, stopping after step STOP_AT (a checkpoint and adapter/ are saved on stop);
    returns the session's result, the trained tensors as they were saved, and what chat
    must hold of them."""
    bus, control = EventBus(), TrainingControl()

    def watch(event: Any) -> None:
        if isinstance(event, StepMetrics) and event.step >= STOP_AT:
            control.stop()

    bus.subscribe(watch)
    session = TrainingSession(config, bus, control, base_dir=REPO, telemetry_interval=None)
    result = session.run()
    assert result.state is RunState.STOPPED, (
        result,
        (Path(result.run_dir) / "log.txt").read_text(),
    )
    return result, trained_tensors(session.model), inference_tensors(session.model, config)


def inference_tensors(model: Any, config: Any) -> dict[str, Any]:
    """What chat must hold: the trained tensors, except that P-tuning keeps only its prompt
    encoder's output (the virtual tokens), as peft saves it for inference."""
    if config.method.name != "p_tuning":
        return trained_tensors(model)
    tokens = model.get_prompt_embedding_to_save("default").detach().cpu().clone()
    return {"prompt_encoder.default.embedding.weight": tokens}


def chat_model(target: Any) -> Any:
    from studio.chat.loading import load_chat_parts

    modes, _, _ = load_chat_parts(target, device="cpu", check_memory=False)
    with modes.use(adapter=True) as model:
        return model


def sample_logits(model: Any) -> Any:
    import torch

    ids = torch.tensor([[5, 17, 42, 99, 7, 300, 12, 64]])
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def unquantized_tuned(model_dir: Path, run: Path) -> Any:
    """A QLoRA adapter on the full-precision base: what its merged export is (the adapter
    folded into the original weights, not into their 4-bit rounding)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return PeftModel.from_pretrained(base, str(run / "adapter")).eval()


def resume_and_capture(run: Path, monkeypatch: Any) -> tuple[Any, list[dict[str, Any]]]:
    """Resume `run`; the trained tensors right after the checkpoint was loaded are captured."""
    from studio.methods import restore

    captured: list[dict[str, Any]] = []
    real = restore.restore_on_resume

    def spying(trainer: Any, settings: Any) -> None:
        real(trainer, settings)
        checked = trainer._load_from_checkpoint

        def load(path: str, model: Any = None) -> None:
            checked(path, model)
            captured.append(trained_tensors(model if model is not None else trainer.model))

        trainer._load_from_checkpoint = load

    monkeypatch.setattr(restore, "restore_on_resume", spying)
    result = TrainingSession.resume(run, telemetry_interval=None).run()
    monkeypatch.undo()
    return result, captured


def check_case(model_dir: Path, method: str, tmp_path: Path, monkeypatch: Any) -> None:
    """Train a few steps, reload in chat (final adapter and checkpoint), export, resume."""
    import torch
    from transformers import AutoModelForCausalLM

    from studio.chat.targets import run_target
    from studio.methods.registry import get_method
    from studio.runs.export import export_run

    config = run_config(model_dir, method, tmp_path / "runs", write_data(tmp_path))
    result, saved, for_chat = train_until_stopped(config)
    run = Path(result.run_dir)
    assert saved, "the method trained nothing"

    # Chat: the run's result and its checkpoint hold exactly what was trained.
    tuned = chat_model(run_target(run))
    assert_same(for_chat, tuned, "chat (adapter/)")
    assert_same(for_chat, chat_model(run_target(run, checkpoint="latest")), "chat (checkpoint)")

    # Export: a standalone model where the method allows it, computing what chat computes.
    spec = get_method(method)
    export = export_run(run, merged=spec.can_export)
    if spec.can_export:
        standalone = AutoModelForCausalLM.from_pretrained(export.path, dtype=torch.float32)
        expected = sample_logits(tuned if method != "qlora" else unquantized_tuned(model_dir, run))
        assert torch.allclose(sample_logits(standalone), expected, atol=1e-4, rtol=1e-4), (
            (sample_logits(standalone) - expected).abs().max()
        )
    else:
        assert export.kind == "adapter" and (export.path / "ftstudio_method.json").exists()

    # Resume: every trained tensor back as saved, then the run finishes.
    stopped_at = last_complete_checkpoint(run).step
    assert stopped_at < STEPS
    resumed, captured = resume_and_capture(run, monkeypatch)
    assert resumed.state is RunState.FINISHED, (run / "log.txt").read_text()[-2000:]
    assert resumed.steps == STEPS
    assert len(captured) == 1, "the resumed run did not load its checkpoint"
    assert captured[0].keys() == saved.keys()
    for name, tensor in saved.items():
        assert torch.equal(captured[0][name], tensor), f"resume: {name} not restored"
