"""Every fine-tuning method trains the tiny model through the real engine, saves and loads back.

For each method: the loss goes down over a few dozen steps; exactly the intended parameters
changed (every frozen tensor bit-identical, every trainable one moved) and their count is
what the method should train; the saved result, loaded on a fresh base model, gives the same
logits, for chat and for further training; and where the method allows it, the merged model
round-trips through save_pretrained / from_pretrained with the same logits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from studio.config import config_from_dict
from studio.engine import EventBus, RunState, StateChanged, StepMetrics
from studio.engine.session import TrainingSession
from studio.errors import ConfigError
from studio.methods import registry
from tests.conftest import SAMPLE_DATA

# The tiny model's shape (studio/models/tiny.py).
H, KV, INTER, LAYERS = 128, 64, 352, 4
STEPS = 30


def linear_shapes() -> list[tuple[str, int, int]]:
    return [
        ("q_proj", H, H),
        ("k_proj", H, KV),
        ("v_proj", H, KV),
        ("o_proj", H, H),
        ("gate_proj", H, INTER),
        ("up_proj", H, INTER),
        ("down_proj", INTER, H),
    ]


def layer_parameters() -> int:
    return sum(i * o for _, i, o in linear_shapes()) + 2 * H


def lora_count(rank: int, targets: tuple[str, ...] | None = None, dora: bool = False) -> int:
    modules = [m for m in linear_shapes() if targets is None or m[0] in targets]
    per_layer = sum(rank * (i + o) + (o if dora else 0) for _, i, o in modules)
    return LAYERS * per_layer


@dataclass(frozen=True)
class Case:
    id: str
    method: dict[str, Any]
    learning_rate: float
    trainable: int
    optimizer: str = "adamw_torch"
    # Name fragments of the parameters that must train (all others must not).
    trains: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def mlp(tokens: int, hidden: int) -> int:
    return tokens * H + (H * hidden + hidden) + (hidden * hidden + hidden) + (hidden * H + H)


def lstm(tokens: int, hidden: int) -> int:
    layers = 2 * 4 * hidden * (H + hidden + 2) + 2 * 4 * hidden * (2 * hidden + hidden + 2)
    head = (2 * hidden) ** 2 + 2 * hidden + 2 * hidden * H + H
    return tokens * H + layers + head


CASES = [
    Case(
        "freeze",
        {"name": "freeze", "trainable_layers": 1, "trainable_patterns": ["model.norm."]},
        3e-3,
        layer_parameters() + H,
        trains=("layers.3.", "model.norm."),
    ),
    Case(
        "prompt_tuning",
        {"name": "prompt_tuning", "num_virtual_tokens": 8, "init_text": "Answer briefly:"},
        1e-2,
        8 * H,
        trains=("prompt_encoder",),
    ),
    Case(
        "p_tuning_mlp",
        {"name": "p_tuning", "num_virtual_tokens": 8, "encoder_hidden_size": 64},
        3e-3,
        mlp(8, 64),
        trains=("prompt_encoder",),
    ),
    Case(
        "p_tuning_lstm",
        {
            "name": "p_tuning",
            "num_virtual_tokens": 8,
            "encoder_type": "lstm",
            "encoder_hidden_size": 32,
        },
        3e-3,
        lstm(8, 32),
        trains=("prompt_encoder",),
    ),
    Case(
        "prefix_tuning",
        {"name": "prefix_tuning", "num_virtual_tokens": 8},
        1e-2,
        8 * LAYERS * 2 * KV,
        trains=("prompt_encoder",),
    ),
    Case(
        "prefix_projection",
        {
            "name": "prefix_tuning",
            "num_virtual_tokens": 8,
            "projection": True,
            "encoder_hidden_size": 32,
        },
        3e-3,
        8 * KV + (KV * 32 + 32) + (32 * LAYERS * 2 * KV + LAYERS * 2 * KV),
        trains=("prompt_encoder",),
    ),
    Case(
        "bottleneck_sequential",
        {"name": "bottleneck", "bottleneck_size": 16},
        3e-3,
        LAYERS * 2 * (2 * H * 16 + 16 + H),
        trains=("bottleneck_adapter",),
    ),
    Case(
        "bottleneck_scaled_parallel",
        {
            "name": "bottleneck",
            "bottleneck_size": 16,
            "placement": "parallel",
            "scaling": 4.0,
            "location": "mlp",
        },
        3e-3,
        LAYERS * (2 * H * 16 + 16 + H),
        trains=("mlp.bottleneck_adapter",),
    ),
    Case(
        "lora",
        {"name": "lora", "rank": 8, "dropout": 0.0},
        3e-3,
        lora_count(8),
        trains=("lora_A", "lora_B"),
    ),
    Case(
        "lora_rslora_dora",
        {
            "name": "lora",
            "rank": 4,
            "use_rslora": True,
            "use_dora": True,
            "target_modules": ["q_proj", "v_proj"],
        },
        3e-3,
        lora_count(4, ("q_proj", "v_proj"), dora=True),
        trains=("lora_A", "lora_B", "lora_magnitude_vector"),
    ),
    Case(
        "qlora_paged",
        {"name": "qlora", "rank": 8, "dropout": 0.0},
        3e-3,
        lora_count(8),
        optimizer="paged_adamw_8bit",
        trains=("lora_A", "lora_B"),
    ),
    Case(
        "ia3",
        {"name": "ia3"},
        1e-2,
        LAYERS * (KV + KV + INTER),  # k_proj and v_proj outputs, down_proj input
        trains=("ia3_l",),
    ),
    Case("full", {"name": "full"}, 1e-3, None, trains=("",)),  # type: ignore[arg-type]
]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tiny model gains nothing from intra-op threads, and on a busy CI machine their
    spin-waiting makes each step 10x slower; one thread keeps the file fast and steady."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_config(case: Case, runs_dir: Path) -> Any:
    return config_from_dict(
        {
            "model": {"source": "tiny-demo"},
            "method": case.method,
            "data": {"path": str(SAMPLE_DATA / "alpaca_en.jsonl"), "max_length": 128},
            "training": {
                "max_steps": STEPS,
                "batch_size": 4,
                "learning_rate": case.learning_rate,
                "scheduler": "constant",
                "warmup_steps": 0,
                "logging_steps": 1,
                "optimizer": case.optimizer,
                "seed": 0,
            },
            "output": {"runs_dir": str(runs_dir), "run_name": case.id},
        }
    )


@dataclass
class Probe:
    """Records the model's parameters when training starts, and the step losses."""

    session: TrainingSession | None = None
    before: dict[str, Any] = field(default_factory=dict)
    trainable: set[str] = field(default_factory=set)
    losses: list[float] = field(default_factory=list)

    def __call__(self, event: Any) -> None:
        if isinstance(event, StateChanged) and event.state is RunState.RUNNING and not self.before:
            assert self.session is not None
            for name, parameter in self.session.model.named_parameters():
                self.before[name] = parameter.detach().clone()
                if parameter.requires_grad:
                    self.trainable.add(name)
        elif isinstance(event, StepMetrics) and event.loss is not None:
            self.losses.append(event.loss)


def sample_batch(tokenizer: Any) -> dict[str, Any]:
    questions = ["What is the capital of France?", "Name a primary colour."]
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False
        )
        for q in questions
    ]
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def logits(model: Any, batch: dict[str, Any]) -> Any:
    import torch

    model.eval()
    with torch.no_grad():
        return model(**batch).logits.float()


def fresh_base(config: Any) -> Any:
    from studio.models.loading import load_base_model, plan_device

    plan = plan_device(config.model, config.training.precision)
    implementation = registry.get_method(config.method.name).implementation()
    quantization = None
    if hasattr(implementation, "quantization_config"):
        quantization = implementation.quantization_config(config.method, plan)
    return load_base_model(config.model, plan, quantization_config=quantization)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_method_trains_saves_and_loads(case: Case, tmp_path: Path, tiny_tokenizer) -> None:
    import torch

    config = run_config(case, tmp_path / "runs")
    bus = EventBus()
    probe = Probe()
    bus.subscribe(probe)
    session = TrainingSession(config, bus, telemetry_interval=None)
    probe.session = session
    result = session.run()
    run_dir = Path(result.run_dir)
    assert result.state is RunState.FINISHED, (run_dir / "log.txt").read_text()[-3000:]
    model = session.model

    # The loss goes down.
    assert len(probe.losses) == STEPS
    first, last = probe.losses[:5], probe.losses[-5:]
    assert sum(last) / 5 < 0.9 * sum(first) / 5, probe.losses

    # The reported trainable count is what the method should train.
    trainable, total = registry.trainable_parameters(model)
    expected = case.trainable if case.trainable is not None else total
    assert trainable == expected
    assert f"trainable params: {expected:,}" in (run_dir / "log.txt").read_text()

    # Exactly the intended parameters changed: frozen ones bit-identical, trainable ones moved.
    after = dict(model.named_parameters())
    assert set(after) == set(probe.before)
    assert probe.trainable and all(
        any(fragment in name for fragment in case.trains) for name in probe.trainable
    )
    for name, old in probe.before.items():
        new = after[name].detach()
        if name in probe.trainable:
            assert not torch.equal(old, new), f"{name} did not train"
        else:
            assert torch.equal(old, new), f"frozen {name} changed"

    # Saved and loaded back on a fresh base model: the same logits, for chat and to train on.
    adapter = run_dir / "adapter"
    batch = sample_batch(tiny_tokenizer)
    trained_logits = logits(model, batch)
    loaded = registry.load_trained(fresh_base(config), adapter)
    assert registry.trainable_parameters(loaded)[0] == 0
    torch.testing.assert_close(logits(loaded, batch), trained_logits, atol=1e-5, rtol=1e-5)
    resumed = registry.load_trained(fresh_base(config), adapter, trainable=True)
    assert registry.trainable_parameters(resumed)[0] == expected
    torch.testing.assert_close(logits(resumed, batch), trained_logits, atol=1e-5, rtol=1e-5)

    # Merged (or, for full and freeze, the whole model): a plain transformers model.
    spec = registry.get_method(config.method.name)
    if not spec.can_export:
        with pytest.raises(ConfigError):
            registry.merge_trained(loaded, config.method)
        return
    from transformers import AutoModelForCausalLM

    merged = registry.merge_trained(loaded, config.method)
    export = tmp_path / "merged"
    merged.save_pretrained(str(export))
    assert not (export / "adapter_config.json").exists()
    assert "quantization_config" not in json.loads((export / "config.json").read_text())
    standalone = AutoModelForCausalLM.from_pretrained(str(export))
    torch.testing.assert_close(logits(standalone, batch), trained_logits, atol=1e-4, rtol=1e-4)


def test_freeze_saves_only_the_trained_tensors(tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    from studio.config import FreezeSettings
    from studio.methods import freeze

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    settings = FreezeSettings(trainable_layers=1)
    freeze.apply(model, settings)
    registry.save_trained(model, settings, tmp_path)
    from safetensors import safe_open

    with safe_open(str(tmp_path / freeze.WEIGHTS_FILE), "pt") as saved:
        names = set(saved.keys())
    assert names == {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(name.startswith("model.layers.3.") for name in names)
    weights = (tmp_path / freeze.WEIGHTS_FILE).stat().st_size
    whole = sum(f.stat().st_size for f in tiny_model_dir.glob("*.safetensors"))
    assert weights < 0.25 * whole
