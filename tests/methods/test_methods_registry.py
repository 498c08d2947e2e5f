"""The method registry and the behaviour of single methods that needs no training run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from studio.config import (
    METHOD_NAMES,
    METHOD_TRAINING_TYPES,
    BottleneckSettings,
    FreezeSettings,
    FullSettings,
    IA3Settings,
    LoraSettings,
    PrefixTuningSettings,
    PTuningSettings,
)
from studio.errors import ConfigError
from studio.methods import registry
from tests.conftest import REPO
from tests.methods.test_methods_train import one_torch_thread  # noqa: F401  (autouse fixture)


def test_every_method_is_registered_with_its_facts() -> None:
    assert set(registry.METHODS) == set(METHOD_NAMES)
    merge = {name for name, spec in registry.METHODS.items() if spec.can_merge}
    whole = {name for name, spec in registry.METHODS.items() if spec.whole_model}
    assert merge == {"lora", "qlora", "ia3"}
    assert whole == {"full", "freeze"}
    assert {n for n, s in registry.METHODS.items() if not s.can_export} == {
        "prompt_tuning",
        "p_tuning",
        "prefix_tuning",
        "bottleneck",
    }
    assert registry.get_method("qlora").quantized_base
    assert registry.get_method("full").warning
    assert [n for n, s in registry.METHODS.items() if not s.supports_gradient_checkpointing] == [
        "prefix_tuning"
    ]
    for name, spec in registry.METHODS.items():
        assert spec.training_types == METHOD_TRAINING_TYPES[name]
        assert spec.title and spec.summary and spec.description
        for field in spec.parameters.values():
            assert field.description
        module = spec.implementation()
        for function in ("apply", "save", "load", "merge"):
            assert callable(getattr(module, function)), (name, function)
    with pytest.raises(KeyError, match="unknown method"):
        registry.get_method("adapterfusion")


def test_registry_and_memory_estimate_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from studio.methods.registry import METHODS\n"
        "from studio.methods.memory import estimate_memory\n"
        "for name in METHODS:\n"
        "    estimate_memory({'vocab_size': 32000, 'hidden_size': 4096,\n"
        "        'intermediate_size': 11008, 'num_hidden_layers': 32,\n"
        "        'num_attention_heads': 32}, name)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def tiny_model(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


def padded_batch(tokenizer):
    return tokenizer(["Hello there, how are you today?", "Hi"], return_tensors="pt", padding=True)


def test_prefix_tuning_refuses_gradient_checkpointing_up_front(tiny_model) -> None:
    from studio.methods import prefix

    context = registry.MethodContext(gradient_checkpointing=True)
    with pytest.raises(ConfigError, match="gradient checkpointing") as error:
        prefix.apply(tiny_model, PrefixTuningSettings(num_virtual_tokens=4), context)
    assert "training.gradient_checkpointing: false" in (error.value.advice or "")


@pytest.mark.slow
def test_prefix_tuning_trains_when_the_trainer_asks_for_checkpointing(
    tiny_model, tiny_tokenizer, tmp_path: Path
) -> None:
    """The failure of the issue: a Trainer with gradient checkpointing on (trl's default)
    dropped the prefix cache and hit a mask size mismatch. Now it trains, without it."""
    from transformers import Trainer, TrainingArguments

    from studio.engine.encoding import PaddingCollator
    from studio.methods import prefix

    notes: list[str] = []
    context = registry.MethodContext(log=lambda text, level="info": notes.append(text))
    model = prefix.apply(tiny_model, PrefixTuningSettings(num_virtual_tokens=4), context)
    features = [
        {"input_ids": list(range(5, 5 + n)), "labels": list(range(5, 5 + n))}
        for n in (12, 7, 9, 15)
    ]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=2,
        gradient_checkpointing=True,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        remove_unused_columns=False,
    )
    collator = PaddingCollator(tiny_tokenizer.pad_token_id)
    Trainer(model=model, args=args, train_dataset=features, data_collator=collator).train()
    assert any("gradient checkpointing stays off" in note for note in notes)
    assert not any(getattr(m, "gradient_checkpointing", False) for m in model.modules())


def test_bottleneck_starts_as_identity_and_switches_off(tiny_model, tiny_tokenizer) -> None:
    import torch

    from studio.chat.adapter_modes import adapter_modes_for
    from studio.methods import bottleneck

    batch = padded_batch(tiny_tokenizer)
    with torch.no_grad():
        base = tiny_model(**batch).logits
    settings = BottleneckSettings(bottleneck_size=8, placement="parallel", scaling=4.0)
    model = bottleneck.apply(tiny_model, settings)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, base)  # zero-initialised up-projection
        for adapter in model.bottleneck_adapters().values():
            adapter.up.weight.normal_(std=0.1)
        tuned = model(**batch).logits
        with model.disable_adapter():
            torch.testing.assert_close(model(**batch).logits, base)
    assert not torch.allclose(tuned, base)
    assert len(model.bottleneck_adapters()) == 2 * 4
    # Chat's compare mode switches it off the way it does for peft models.
    modes = adapter_modes_for(model, has_adapter=True, load_base=lambda: None)
    assert modes.strategy == "disable_adapter"


def test_bottleneck_save_pretrained_writes_only_the_adapter(tiny_model, tmp_path: Path) -> None:
    from studio.methods import bottleneck

    model = bottleneck.apply(tiny_model, BottleneckSettings(bottleneck_size=8, location="mlp"))
    model.save_pretrained(tmp_path)  # what the Trainer calls for a checkpoint
    saved = {p.name for p in tmp_path.iterdir()}
    assert saved == {bottleneck.CONFIG_FILE, bottleneck.CHECKPOINT_WEIGHTS_FILE}
    assert (tmp_path / bottleneck.CHECKPOINT_WEIGHTS_FILE).stat().st_size < 50_000


def test_freeze_with_nothing_to_train_is_a_config_error(tiny_model) -> None:
    from studio.methods import freeze

    with pytest.raises(ConfigError, match="no parameter is left to train"):
        freeze.apply(tiny_model, FreezeSettings(trainable_layers=0, trainable_patterns=["nope"]))


def test_ia3_feedforward_modules_must_be_targets(tiny_model) -> None:
    from studio.methods import ia3

    settings = IA3Settings(target_modules=["k_proj", "v_proj"], feedforward_modules=["down_proj"])
    with pytest.raises(ConfigError, match="subset"):
        ia3.apply(tiny_model, settings)
    # Targets without feed-forward names: the feed-forward ones are picked from the targets.
    model = ia3.apply(tiny_model, IA3Settings(target_modules=["v_proj", "down_proj"]))
    assert registry.trainable_parameters(model)[0] == 4 * (64 + 352)


def test_full_fine_tune_logs_its_memory_cost(tiny_model) -> None:
    from studio.methods import full

    notes: list[tuple[str, str]] = []
    context = registry.MethodContext(log=lambda text, level="info": notes.append((text, level)))
    full.apply(tiny_model, FullSettings(), context)
    ((text, level),) = notes
    assert level == "warning" and "trains all" in text and "adamw_torch state" in text


def test_merging_a_virtual_token_method_is_refused(tiny_model) -> None:
    with pytest.raises(ConfigError, match="cannot be merged"):
        registry.merge_trained(tiny_model, PrefixTuningSettings())


RESUMED = [
    PTuningSettings(num_virtual_tokens=4, encoder_hidden_size=16),
    PrefixTuningSettings(num_virtual_tokens=4, projection=True, encoder_hidden_size=16),
    BottleneckSettings(bottleneck_size=8),
    LoraSettings(rank=4),
]


@pytest.mark.slow
@pytest.mark.parametrize("settings", RESUMED, ids=lambda s: s.name)
def test_trainer_checkpoint_resumes_the_trained_state(
    settings, tiny_model_dir: Path, tiny_tokenizer, tmp_path: Path
) -> None:
    """What the Trainer saves as a checkpoint and loads on resume is the whole trained state:
    for P-tuning and prefix projection that includes the prompt encoder, which plain peft
    checkpoints lack (its resume would run the encoder over its own saved output)."""
    import torch
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from studio.engine.encoding import PaddingCollator

    implementation = registry.get_method(settings.name).implementation()
    features = [
        {"input_ids": list(range(5, 5 + n)), "labels": list(range(5, 5 + n))} for n in (9, 6)
    ]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=2,
        learning_rate=1e-2,
        per_device_train_batch_size=2,
        save_strategy="steps",
        save_steps=2,
        use_cpu=True,
        report_to=[],
        disable_tqdm=True,
        remove_unused_columns=False,
    )

    def trainer(model):
        collator = PaddingCollator(tiny_tokenizer.pad_token_id)
        return Trainer(model=model, args=args, train_dataset=features, data_collator=collator)

    trained = implementation.apply(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), settings, registry.MethodContext()
    )
    trainer(trained).train()
    batch = padded_batch(tiny_tokenizer)
    resumed = implementation.apply(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), settings, registry.MethodContext()
    )
    trainer(resumed).train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    trained.eval()
    resumed.eval()
    with torch.no_grad():
        torch.testing.assert_close(resumed(**batch).logits, trained(**batch).logits)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_every_method_has_a_ready_sample_config(name: str) -> None:
    from studio.config import load_config
    from tests.conftest import SAMPLE_DATA

    config = load_config(SAMPLE_DATA / "configs" / f"{name}.yaml")
    assert config.method.name == name
    assert config.model.source == "tiny-demo"
