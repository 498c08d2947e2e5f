"""Every registered method module provides the TrainingMethod protocol; one that does not is
refused by the registry, naming what it lacks, and the memory estimate asks the method."""

from __future__ import annotations

from dataclasses import replace
from types import ModuleType

import pytest

from studio.config import LoraSettings
from studio.methods import registry
from studio.methods.memory import estimate_memory
from studio.methods.memory_plan import MemoryPlan
from studio.methods.protocol import check_method, missing_members, protocol_members
from studio.models.shape import ModelShape

SHAPE = ModelShape.from_dict(
    {
        "model_type": "llama",
        "vocab_size": 32000,
        "hidden_size": 512,
        "intermediate_size": 1376,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
    }
)


def test_the_protocol_names_what_registry_and_estimate_use() -> None:
    assert set(protocol_members()) == {"SETTINGS", "apply", "save", "load", "merge", "memory_plan"}


@pytest.mark.parametrize("name", sorted(registry.METHODS))
def test_every_registered_method_is_checked_and_states_its_plan(name: str) -> None:
    spec = registry.get_method(name)
    module = spec.implementation()  # raises TypeError when the module lacks a member
    assert missing_members(module) == []
    assert spec.settings_model in module.SETTINGS
    plan = module.memory_plan(SHAPE, spec.settings_model(), activation_bytes=2, weight_bytes=2)
    assert isinstance(plan, MemoryPlan) and plan.trainable > 0
    assert plan.layers_with_grad > 0
    # The estimate counts what the method's own plan states.
    estimate = estimate_memory(SHAPE, name, precision="bf16")
    assert estimate.trainable_parameters == plan.trainable
    assert estimate.total_parameters == SHAPE.num_parameters + plan.adapter
    assert estimate.gradients == 4 * plan.trainable


def test_a_method_missing_a_member_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.methods import ia3

    monkeypatch.delattr(ia3, "memory_plan")
    with pytest.raises(TypeError, match=r"method 'ia3'.*studio\.methods\.ia3.*missing memory_plan"):
        registry.get_method("ia3").implementation()
    with pytest.raises(TypeError, match="missing memory_plan"):
        estimate_memory(SHAPE, "ia3")


def test_a_bare_module_is_refused_with_every_missing_member() -> None:
    bare = ModuleType("studio.methods.half_done")
    bare.apply = lambda model, settings, context=None: model  # type: ignore[attr-defined]
    bare.save = "not a function"  # type: ignore[attr-defined]
    assert missing_members(bare) == ["SETTINGS", "load", "memory_plan", "merge", "save"]
    with pytest.raises(TypeError) as error:
        check_method(bare, "half_done", LoraSettings)
    assert "missing SETTINGS, load, memory_plan, merge, save" in str(error.value)


def test_a_module_for_other_settings_is_refused() -> None:
    wrong = replace(registry.get_method("lora"), module="studio.methods.ia3")
    with pytest.raises(TypeError, match="SETTINGS does not list LoraSettings"):
        wrong.implementation()
