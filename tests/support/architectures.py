"""Tiny random-weight models of the architectures users bring, built by the tests.

Each is 2 layers of width 64 with the built-in tiny model's tokenizer (921 tokens), saved with
`save_pretrained` like a downloaded model, so the whole studio reads it as a local folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

VOCAB = 921  # len() of the tiny model's tokenizer
COMMON: dict[str, Any] = {
    "vocab_size": VOCAB,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}


def _llama_like(**extra: Any) -> dict[str, Any]:
    return {**COMMON, **extra}


# model_type -> (config class name, keyword arguments)
ARCHITECTURES: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": ("LlamaConfig", _llama_like()),
    "qwen2": ("Qwen2Config", _llama_like(tie_word_embeddings=True)),
    "qwen3": ("Qwen3Config", _llama_like(head_dim=16)),
    "gemma2": ("Gemma2Config", _llama_like(head_dim=16, sliding_window=32)),
    "gemma3_text": ("Gemma3TextConfig", _llama_like(head_dim=16, sliding_window=32)),
    "phi3": ("Phi3Config", _llama_like(pad_token_id=None)),
    "mistral": ("MistralConfig", _llama_like(sliding_window=None)),
    "gpt2": (
        "GPT2Config",
        {"vocab_size": VOCAB, "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 512},
    ),
    "gpt_neox": (
        "GPTNeoXConfig",
        {**{k: v for k, v in COMMON.items() if k != "num_key_value_heads"}},
    ),
    "qwen2_moe": (
        "Qwen2MoeConfig",
        _llama_like(
            moe_intermediate_size=32,
            shared_expert_intermediate_size=64,
            num_experts=4,
            num_experts_per_tok=2,
            decoder_sparse_step=1,
        ),
    ),
}


def build_architecture(model_type: str, folder: Path, tokenizer: Any) -> Path:
    """Save a random model of `model_type` with `tokenizer` into `folder`."""
    import torch
    import transformers

    class_name, kwargs = ARCHITECTURES[model_type]
    config = getattr(transformers, class_name)(
        **kwargs,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    if config.pad_token_id is None and model_type != "phi3":
        config.pad_token_id = tokenizer.pad_token_id
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
