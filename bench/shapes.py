"""Model shapes of real checkpoints, written out so no download is needed: random weights of
exactly these sizes are built locally (`bench.workload.model_folder`).

The numbers are those of the published `config.json` files; `rope_parameters` is the
transformers 5 spelling of rope_theta / rope_scaling.
"""

from __future__ import annotations

from typing import Any

TINY = "tiny-demo"  # the built-in model (studio.models.tiny), used as it is

SHAPES: dict[str, dict[str, Any]] = {
    "llama-3.2-1b": {
        "model_type": "llama",
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "rope_parameters": {
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        "tie_word_embeddings": True,
        "hidden_act": "silu",
    },
    "llama-3-8b": {
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 128256,
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5,
        "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},
        "tie_word_embeddings": False,
        "hidden_act": "silu",
    },
    "qwen2.5-7b": {
        "model_type": "qwen2",
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "head_dim": 128,
        "vocab_size": 152064,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
        "tie_word_embeddings": False,
        "hidden_act": "silu",
        "use_sliding_window": False,
    },
}

# The tiny model's shape, for FLOP counts (studio.models.tiny.MODEL_SHAPE plus its vocabulary).
TINY_SHAPE: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 128,
    "intermediate_size": 352,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "vocab_size": 1024,
    "tie_word_embeddings": False,
}


def shape_of(name: str) -> dict[str, Any]:
    if name == TINY:
        return TINY_SHAPE
    try:
        return SHAPES[name]
    except KeyError:
        known = ", ".join([TINY, *SHAPES])
        raise SystemExit(f"error: unknown model shape '{name}'; choose one of: {known}") from None


def matmul_parameters(shape: dict[str, Any]) -> int:
    """Weights that take part in a matrix multiply per token: every projection of every layer
    and the output layer (the embedding lookup is no matmul; norms and biases are negligible)."""
    hidden = shape["hidden_size"]
    head_dim = shape.get("head_dim") or hidden // shape["num_attention_heads"]
    query = shape["num_attention_heads"] * head_dim
    key_value = shape["num_key_value_heads"] * head_dim
    attention = hidden * query + 2 * hidden * key_value + query * hidden
    mlp = 3 * hidden * shape["intermediate_size"]
    return shape["num_hidden_layers"] * (attention + mlp) + hidden * shape["vocab_size"]


def total_parameters(shape: dict[str, Any]) -> int:
    """All weights, counted like `sum(p.numel())` (a tied output layer counted once)."""
    hidden, vocab = shape["hidden_size"], shape["vocab_size"]
    embedding = hidden * vocab
    norms = (2 * shape["num_hidden_layers"] + 1) * hidden
    biases = 0
    if shape["model_type"] == "qwen2":  # q, k and v projections have biases
        head_dim = shape.get("head_dim") or hidden // shape["num_attention_heads"]
        per_layer = (shape["num_attention_heads"] + 2 * shape["num_key_value_heads"]) * head_dim
        biases = shape["num_hidden_layers"] * per_layer
    tied = embedding if shape.get("tie_word_embeddings") else 0
    return matmul_parameters(shape) + embedding - tied + norms + biases


def attention_width(shape: dict[str, Any]) -> int:
    """Query heads x head size: the width of the score and value products."""
    head_dim = shape.get("head_dim") or shape["hidden_size"] // shape["num_attention_heads"]
    return shape["num_attention_heads"] * head_dim
