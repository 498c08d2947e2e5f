"""Full and freeze fine-tunes train float32 master weights, whatever dtype the model loads in."""

from __future__ import annotations

import pytest

from studio.config import FreezeSettings, FullSettings
from studio.methods import freeze, full


def half_llama(dtype_name: str):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    shape = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    return LlamaForCausalLM(shape).to(getattr(torch, dtype_name))


def one_step(model, learning_rate: float, scaler=None) -> None:
    import torch

    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=learning_rate, weight_decay=0.0)
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    if scaler is None:
        loss.backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # "Attempting to unscale FP16 gradients" on fp16 weights
    scaler.step(optimizer)
    scaler.update()


def test_full_fine_tune_keeps_small_updates_of_bf16_weights() -> None:
    import torch

    model = full.apply(half_llama("bfloat16"), FullSettings())
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    before = model.model.layers[0].mlp.up_proj.weight.detach().clone()
    # AdamW moves each weight by about the learning rate: 1e-5 is far below bf16's spacing
    # near 0.02 (about 1.2e-4), so without a float32 master copy nothing would change.
    one_step(model, 1e-5)
    after = model.model.layers[0].mlp.up_proj.weight.detach()
    assert (after != before).float().mean() > 0.9


def test_freeze_upcasts_only_what_it_trains() -> None:
    import torch

    model = freeze.apply(half_llama("bfloat16"), FreezeSettings(trainable_layers=1))
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    for name, parameter in model.named_parameters():
        expected = torch.float32 if name in trained else torch.bfloat16
        assert parameter.dtype == expected, name
    before = model.model.layers[1].self_attn.q_proj.weight.detach().clone()
    one_step(model, 1e-5)
    assert (model.model.layers[1].self_attn.q_proj.weight.detach() != before).any()


@pytest.mark.parametrize("method", ["full", "freeze"])
def test_fp16_weights_train_with_a_gradient_scaler(method: str) -> None:
    import torch

    model = half_llama("float16")
    if method == "full":
        model = full.apply(model, FullSettings())
    else:
        model = freeze.apply(model, FreezeSettings(trainable_layers=1))
    one_step(model, 1e-4, torch.amp.GradScaler("cpu", init_scale=1024.0))


def test_the_packing_check_runs_a_freeze_model_of_mixed_dtypes() -> None:
    from studio.engine.packing import check_isolation

    model = freeze.apply(half_llama("bfloat16"), FreezeSettings(trainable_layers=1))
    features = [{"input_ids": [3, 7, 11, 2], "labels": [3, 7, 11, 2]}] * 2
    assert check_isolation(model, features) < 3e-2  # bf16 weights and fp32 ones: no dtype error
