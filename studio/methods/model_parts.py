"""Where the parts of a decoder-only transformers model are: its layers, their sublayers.

Freeze and the bottleneck adapter need the stack of decoder layers and, inside each, the
attention and feed-forward blocks. Models name them differently (`model.layers` in Llama,
Qwen and Mistral, `transformer.h` in GPT-2, `gpt_neox.layers`...), so they are found by
shape: the `ModuleList` as long as the config's layer count.
"""

from __future__ import annotations

from typing import Any

from studio.errors import ModelError

ATTENTION_NAMES = ("self_attn", "attention", "attn", "self_attention")
FEEDFORWARD_NAMES = ("mlp", "feed_forward", "ffn")


def text_config(model: Any) -> Any:
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def decoder_layers(model: Any) -> tuple[str, list[Any]]:
    """(qualified name, layers) of the model's stack of decoder layers."""
    import torch

    count = getattr(text_config(model), "num_hidden_layers", None)
    candidates = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.ModuleList) and len(module) > 0
    ]
    if count is not None:
        candidates = [(name, module) for name, module in candidates if len(module) == count]
    # Prefer the conventional names; else the longest list (a stack, not a pair of heads).
    candidates.sort(
        key=lambda item: (not item[0].endswith((".layers", ".h", ".blocks")), -len(item[1]))
    )
    if not candidates:
        raise ModelError(
            f"cannot find the decoder layers of {type(model).__name__}",
            advice="use a decoder-only causal LM (Llama, Qwen, Mistral, Gemma, Phi...)",
        )
    name, layers = candidates[0]
    return name, list(layers)


def sublayer(layer: Any, names: tuple[str, ...]) -> tuple[str, Any] | None:
    """The first child of `layer` called one of `names`, as (name, module)."""
    for name in names:
        module = getattr(layer, name, None)
        if module is not None:
            return name, module
    return None
