"""The sizes of a decoder-only transformer, read from its config alone (no weights, no torch).

`ModelShape.from_model` takes a transformers config object, a `config.json` dict or folder, or
a `ModelInfo` (approximate when it lacks the full shape), and lays the parameters out the way
transformers does (`ModelShape.layout`): separate or fused q/k/v and gate/up projections
(Phi-3, GPT-2's Conv1D, GPT-NeoX), biases, extra norms (Gemma, q/k norms), learned position
embeddings (GPT-2), and a mixture's experts as the fused 3-D tensors transformers 5 keeps (plus
a shared expert and the router). The memory estimate (`studio.methods.memory`) and each
method's memory plan count what they need from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# How transformers lays out the decoder layer's linear layers, by model_type ("llama": separate
# q/k/v and gate/up/down projections, the default).
LAYOUTS = {"phi3": "fused", "gpt2": "gpt2", "gpt_neox": "gpt_neox"}
LAYER_NORM_WITH_BIAS = ("gpt2", "gpt_neox", "opt", "phi", "falcon", "bloom")
UNGATED_MLP = ("gpt2", "gpt_neox", "opt", "phi", "falcon", "bloom")
FOUR_NORMS_PER_LAYER = ("gemma2", "gemma3", "gemma3_text")
QUERY_KEY_NORMS = ("qwen3", "qwen3_moe", "gemma3", "gemma3_text")


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a decoder-only transformer that memory depends on."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int  # of each expert in a mixture-of-experts
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    tied_embeddings: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    gated_mlp: bool = True
    num_experts: int = 1
    active_experts: int = 1
    approximate: bool = False
    model_type: str = ""
    #: "llama", "fused" (Phi-3: qkv_proj, gate_up_proj), "gpt2" or "gpt_neox".
    layout: str = "llama"
    #: Learned position embeddings (GPT-2's `wpe`): rows of them.
    position_embeddings: int = 0
    norm_bias: bool = False
    norms_per_layer: int = 2
    query_key_norms: bool = False
    output_bias: bool = False  # the attention output projection's bias (Llama's attention_bias)
    shared_expert_size: int = 0  # Qwen2-MoE's always-active expert

    @property
    def q_size(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_kv_heads * self.head_dim

    def layer_linears(self) -> list[tuple[str, int, int]]:
        """(name, in_features, out_features) of each linear layer in one decoder layer, named
        as in transformers (a mixture's experts are tensors: see `expert_tensors`)."""
        h, i, q, kv = self.hidden_size, self.intermediate_size, self.q_size, self.kv_size
        if self.layout == "gpt2":
            return [
                ("attn.c_attn", h, q + 2 * kv),
                ("attn.c_proj", q, h),
                ("mlp.c_fc", h, i),
                ("mlp.c_proj", i, h),
            ]
        if self.layout == "gpt_neox":
            return [
                ("attention.query_key_value", h, q + 2 * kv),
                ("attention.dense", q, h),
                ("mlp.dense_h_to_4h", h, i),
                ("mlp.dense_4h_to_h", i, h),
            ]
        if self.layout == "fused":
            attention = [("self_attn.qkv_proj", h, q + 2 * kv), ("self_attn.o_proj", q, h)]
            mlp = [("mlp.gate_up_proj", h, 2 * i), ("mlp.down_proj", i, h)]
        else:
            attention = [
                ("self_attn.q_proj", h, q),
                ("self_attn.k_proj", h, kv),
                ("self_attn.v_proj", h, kv),
                ("self_attn.o_proj", q, h),
            ]
            mlp = [("mlp.gate_proj", h, i), ("mlp.up_proj", h, i), ("mlp.down_proj", i, h)]
            if not self.gated_mlp:
                mlp = [("mlp.up_proj", h, i), ("mlp.down_proj", i, h)]
        if self.num_experts > 1:
            mlp = []
            if self.shared_expert_size:
                s = self.shared_expert_size
                mlp = [
                    ("mlp.shared_expert.gate_proj", h, s),
                    ("mlp.shared_expert.up_proj", h, s),
                    ("mlp.shared_expert.down_proj", s, h),
                    ("mlp.shared_expert_gate", h, 1),
                ]
        return attention + mlp

    def expert_tensors(self) -> list[tuple[str, int, int]]:
        """(name, in_features, out_features) of each fused expert tensor of one layer, per
        expert: transformers 5 keeps every expert's matrices in one 3-D parameter."""
        if self.num_experts <= 1:
            return []
        h, i = self.hidden_size, self.intermediate_size
        return [("mlp.experts.gate_up_proj", h, 2 * i), ("mlp.experts.down_proj", i, h)]

    def _has_bias(self, name: str) -> bool:
        if self.layout == "gpt2":
            return True
        if self.layout == "gpt_neox":
            return self.attention_bias if name.startswith("attention.") else True
        if name.endswith("shared_expert_gate"):
            return False
        if name.startswith("self_attn."):
            return self.output_bias if name.endswith("o_proj") else self.attention_bias
        return self.mlp_bias

    def parameter_names(self) -> list[tuple[str, int]]:
        """(name, count) of every parameter; the layers named `model.layers.N.` whatever the
        architecture calls them."""
        h = self.hidden_size
        norm = h * (2 if self.norm_bias else 1)
        names = [("model.embed_tokens.weight", self.vocab_size * h)]
        if self.position_embeddings:
            names.append(("model.embed_positions.weight", self.position_embeddings * h))
        for index in range(self.num_layers):
            prefix = f"model.layers.{index}."
            for name, fan_in, fan_out in self.layer_linears():
                names.append((f"{prefix}{name}.weight", fan_in * fan_out))
                if self._has_bias(name):
                    names.append((f"{prefix}{name}.bias", fan_out))
            for name, fan_in, fan_out in self.expert_tensors():
                names.append((f"{prefix}{name}", self.num_experts * fan_in * fan_out))
            if self.num_experts > 1:
                names.append((f"{prefix}mlp.gate.weight", h * self.num_experts))
            for number in range(self.norms_per_layer):
                names.append((f"{prefix}norm_{number}", norm))
            if self.query_key_norms:
                names.append((f"{prefix}self_attn.q_norm.weight", self.head_dim))
                names.append((f"{prefix}self_attn.k_norm.weight", self.head_dim))
        names.append(("model.norm.weight", norm))
        if not self.tied_embeddings:
            names.append(("lm_head.weight", self.vocab_size * h))
        return names

    @property
    def num_parameters(self) -> int:
        return sum(count for _, count in self.parameter_names())

    @property
    def linear_parameters(self) -> int:
        """Parameters in the decoder layers' linear weights (what 4-bit loading quantizes)."""
        return self.num_layers * sum(
            fan_in * fan_out for _, fan_in, fan_out in self.layer_linears()
        )

    @property
    def expert_parameters(self) -> int:
        """Parameters in fused expert tensors (which bitsandbytes does not quantize)."""
        return (
            self.num_layers
            * self.num_experts
            * sum(fan_in * fan_out for _, fan_in, fan_out in self.expert_tensors())
        )

    @classmethod
    def from_model(cls, model: Any) -> ModelShape:
        """From a transformers config, a config.json dict, a model folder or a ModelInfo."""
        if isinstance(model, ModelShape):
            return model
        if isinstance(model, (str, Path)):
            path = Path(model)
            path = path / "config.json" if path.is_dir() else path
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        if isinstance(model, dict):
            return cls.from_dict(model)
        if hasattr(model, "get_text_config"):
            model = model.get_text_config()
        if hasattr(model, "to_dict"):
            return cls.from_dict(model.to_dict())
        if hasattr(model, "num_parameters") and hasattr(model, "num_layers"):
            return cls.from_model_info(model)
        raise TypeError(f"cannot read a model shape from {type(model).__name__}")

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> ModelShape:
        if isinstance(config.get("text_config"), dict):
            config = {**config, **config["text_config"]}

        def first(*keys: str, default: Any = None) -> Any:
            for key in keys:
                if config.get(key) is not None:
                    return config[key]
            return default

        hidden = int(first("hidden_size", "n_embd", "d_model"))
        heads = int(first("num_attention_heads", "n_head", "num_heads"))
        head_dim = int(first("head_dim", default=hidden // heads))
        experts = int(first("num_local_experts", "num_experts", "n_routed_experts", default=1))
        intermediate = first("moe_intermediate_size") if experts > 1 else None
        intermediate = intermediate or first("intermediate_size", "n_inner", "ffn_dim")
        model_type = str(config.get("model_type", ""))
        layout = LAYOUTS.get(model_type, "llama")
        qwen2_family = model_type.startswith("qwen2")
        attention_bias = config.get("attention_bias")
        if attention_bias is None:  # Qwen2 and GPT-NeoX have q/k/v biases without saying so
            attention_bias = qwen2_family or model_type == "gpt_neox"
        return cls(
            vocab_size=int(config["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(intermediate or 4 * hidden),
            num_layers=int(first("num_hidden_layers", "n_layer", "num_layers")),
            num_heads=heads,
            num_kv_heads=int(first("num_key_value_heads", "num_kv_heads", default=heads)),
            head_dim=head_dim,
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
            attention_bias=bool(attention_bias),
            mlp_bias=bool(config.get("mlp_bias", False)),
            gated_mlp=model_type not in UNGATED_MLP,
            num_experts=experts,
            active_experts=int(first("num_experts_per_tok", "moe_topk", default=1)),
            model_type=model_type,
            layout=layout,
            position_embeddings=int(first("n_positions", default=0)) if layout == "gpt2" else 0,
            norm_bias=model_type in LAYER_NORM_WITH_BIAS,
            norms_per_layer=4 if model_type in FOUR_NORMS_PER_LAYER else 2,
            query_key_norms=model_type in QUERY_KEY_NORMS,
            # Llama-style models put attention_bias on o_proj too; the Qwen2 family does not.
            output_bias=bool(attention_bias) and not qwen2_family,
            shared_expert_size=int(first("shared_expert_intermediate_size", default=0))
            if experts > 1
            else 0,
        )

    @classmethod
    def from_model_info(cls, info: Any) -> ModelShape:
        """An approximate Llama-style shape from a parameter count and a few sizes."""
        hidden = int(info.hidden_size)
        layers = int(info.num_layers)
        vocab = int(info.vocab_size or 32000)
        heads = max(hidden // 128, 1)
        tied = False
        if not info.num_parameters:  # unknown: the usual Llama ratio
            intermediate = 8 * hidden // 3
        else:
            # params = 2 V h (untied) + L (4 h^2 + 3 h I + 2 h) + h; solve for the MLP width I.
            per_layer = (int(info.num_parameters) - 2 * vocab * hidden - hidden) / layers
            intermediate = int((per_layer - 4 * hidden * hidden - 2 * hidden) / (3 * hidden))
        if intermediate <= 0:
            params = int(info.num_parameters)
            tied = True
            per_layer = (params - vocab * hidden - hidden) / layers
            intermediate = max(
                int((per_layer - 4 * hidden * hidden - 2 * hidden) / (3 * hidden)), 1
            )
        return cls(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=intermediate,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=heads,
            head_dim=hidden // heads,
            tied_embeddings=tied,
            approximate=True,
        )
