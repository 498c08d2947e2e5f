"""Compare mode for methods other than LoRA: the base side must still be the base weights.

A full fine-tune leaves nothing of the base in the trained model, so chat keeps a separate
base copy; a bottleneck adapter switches off through its `disable_adapter()` context. Each
trained folder is made by hand here (weights changed at random, saved through the method
registry), so no training is needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.chat import ChatModel, GenerationSettings, resolve_target

QUESTION = "What is the capital of France?"


def method_settings(name: str):
    from studio.config import METHOD_SETTINGS
    from studio.methods.registry import METHODS

    if name not in METHODS:
        pytest.skip(f"method '{name}' is not in this build")
    return METHOD_SETTINGS[name]()


def perturb(parameters, seed: int) -> None:
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in parameters:
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)


def logits(model, ids: list[int]):
    import torch

    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0, -1].float()


@pytest.mark.parametrize(
    ("name", "strategy"),
    [("full", "separate base copy"), ("bottleneck", "disable_adapter")],
)
def test_base_side_is_the_base_model(
    name: str, strategy: str, tmp_path: Path, tiny_model_dir: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from studio.methods.registry import get_method, save_trained

    settings = method_settings(name)
    trained = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    trained = get_method(name).implementation().apply(trained, settings, None)
    perturb([p for p in trained.parameters() if p.requires_grad], seed=1)
    folder = tmp_path / name
    save_trained(trained, settings, folder)

    chat = ChatModel.load(resolve_target(folder, model_source=str(tiny_model_dir)))
    assert chat.base_strategy == strategy
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = chat.encode([], QUESTION).ids

    base_side = chat.next_token_logits([], QUESTION, use_adapter=False)
    tuned_side = chat.next_token_logits([], QUESTION, use_adapter=True)
    assert torch.equal(base_side, logits(plain, ids))
    assert torch.allclose(tuned_side, logits(trained, ids), atol=1e-5)
    assert not torch.allclose(base_side, tuned_side, atol=1e-3)
    assert torch.equal(chat.next_token_logits([], QUESTION), tuned_side)  # nothing stuck

    short = GenerationSettings(max_new_tokens=16)
    replies = chat.compare([], QUESTION, short)
    assert replies.base == chat.reply([], QUESTION, short, use_adapter=False)
    assert replies.adapter == chat.reply([], QUESTION, short)
