"""How much memory a fine-tuning run needs, estimated from the model's config alone.

No weights are read and torch is not imported: the Models and Config screens call this for
every method while the user browses. The shape of the model (vocabulary, width, layers, heads,
feed-forward size, tied embeddings, experts) comes from a transformers config object, a
`config.json` dict or folder, or a `ModelInfo` (approximate when it lacks the full shape), and
the parts are counted the way transformers, peft and bitsandbytes lay them out:

- parameters: as the architecture lays them out (`ModelShape.layout`): separate or fused
  q/k/v and gate/up projections (Phi-3, GPT-2's Conv1D, GPT-NeoX), biases, extra norms
  (Gemma, q/k norms), learned position embeddings (GPT-2), and a mixture's experts as the
  fused 3-D tensors transformers 5 keeps (plus a shared expert and the router);
- weights: every base parameter in the load dtype (bf16 on a GPU, fp32 on CPU); QLoRA's
  linear layers at 4 bits plus their quantization constants, with the rest upcast to fp32 by
  `prepare_model_for_kbit_training` and fused experts unquantized (bitsandbytes quantizes
  linear layers only; QLoRA refuses such models); adapter weights in fp32 (as peft keeps
  them), LoRA on fused experts as peft's ParamWrapper makes it (rank x experts); the base
  weights that full and freeze fine-tunes train are fp32 too (`studio.methods.precision`);
- gradients: one per trainable parameter, in fp32;
- optimizer state: AdamW keeps two moments per trainable parameter (8-bit variants 1 byte
  each, paged 32-bit 4 bytes each, SGD none);
- activations: what autograd keeps between forward and backward for a batch of
  `batch_size` x `max_length` tokens, counted tensor by tensor for a Llama-style layer, which
  depends on which weights train (a frozen linear layer keeps no copy of its input), plus the
  logits and the loss; with gradient checkpointing, one hidden state per layer plus one layer
  recomputed at a time;
- overhead: the CUDA context on a GPU (none on CPU).

Example::

    >>> from transformers import LlamaConfig
    >>> from studio.config_methods import QLoraSettings
    >>> from studio.methods.memory import GIB, estimate_memory
    >>> llama_8b = LlamaConfig(hidden_size=4096, intermediate_size=14336,
    ...     num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
    ...     vocab_size=128256)
    >>> estimate = estimate_memory(llama_8b, QLoraSettings(rank=16), batch_size=1,
    ...     max_length=2048, gradient_checkpointing=True, optimizer="paged_adamw_8bit",
    ...     precision="bf16")
    >>> estimate.trainable_parameters
    41943040
    >>> round(estimate.weights / GIB, 2), round(estimate.total / GIB, 2)
    (7.42, 11.12)
    >>> print(estimate.summary())  # doctest: +ELLIPSIS
    weights 7.42 GiB + gradients 0.16 GiB + ... = 11.12 GiB

`tests/methods/test_methods_memory.py` checks the estimate against the peak memory of real training
steps on CPU (process RSS).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GIB = 1024**3
CUDA_CONTEXT_BYTES = 512 * 1024**2
# bitsandbytes 4-bit: blocks of 64 weights share one fp32 scale; double quantization stores
# those scales in 8 bits with an fp32 scale per 256 of them.
QUANT_BLOCK = 64
NESTED_BLOCK = 256


def gib(count: float) -> str:
    """Bytes as GiB with 2 decimals, for messages."""
    return f"{count / GIB:.2f}"


def human_bytes(count: float) -> str:
    """Bytes in the largest unit that keeps a number above 1: '512 KiB', '15.3 GiB'."""
    for unit, size in (("GiB", GIB), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{int(count)} B"


# ------------------------------------------------------------------ the model's shape


# How transformers lays out the decoder layer's linear layers, by model_type ("llama": separate
# q/k/v and gate/up/down projections, the default).
LAYOUTS = {"phi3": "fused", "gpt2": "gpt2", "gpt_neox": "gpt_neox"}
LAYER_NORM_WITH_BIAS = ("gpt2", "gpt_neox", "opt", "phi", "falcon", "bloom")
UNGATED_MLP = ("gpt2", "gpt_neox", "opt", "phi", "falcon", "bloom")
FOUR_NORMS_PER_LAYER = ("gemma2", "gemma3", "gemma3_text")
QUERY_KEY_NORMS = ("qwen3", "qwen3_moe", "gemma3", "gemma3_text")
# Expert tensors by name, and the per-expert layer names users write for them.
EXPERT_ALIASES = {
    "gate_up_proj": ("gate_up_proj", "gate_proj", "up_proj", "w1", "w3"),
    "down_proj": ("down_proj", "w2"),
}


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


# ------------------------------------------------------------------ the result


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs, by part. `total` is what the device must hold at the peak."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    overhead: int = 0
    total_parameters: int = 0
    trainable_parameters: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.overhead

    @property
    def trainable_share(self) -> float:
        return self.trainable_parameters / self.total_parameters if self.total_parameters else 0.0

    def parts(self) -> dict[str, int]:
        return {
            "weights": self.weights,
            "gradients": self.gradients,
            "optimizer": self.optimizer,
            "activations": self.activations,
            "overhead": self.overhead,
        }

    def summary(self) -> str:
        parts = " + ".join(f"{name} {gib(value)} GiB" for name, value in self.parts().items())
        return f"{parts} = {gib(self.total)} GiB"


# ------------------------------------------------------------------ per method


def _settings(method: Any) -> Any:
    if isinstance(method, str):
        from studio.config_methods import method_defaults

        return method_defaults(method)
    return method


def optimizer_state_bytes(optimizer: str, trainable: int, parameter_bytes: int) -> int:
    """Bytes of optimizer state for `trainable` parameters stored in `parameter_bytes` each."""
    if optimizer in ("adamw_torch", "adamw_torch_fused"):
        return 2 * trainable * parameter_bytes
    if optimizer == "paged_adamw_32bit":
        return 2 * trainable * 4
    if optimizer in ("adamw_8bit", "paged_adamw_8bit"):
        return 2 * trainable  # plus one fp32 scale per 256 values, under 2%
    if optimizer == "adafactor":
        return trainable // 2  # factored second moments: rows + columns per matrix (rough)
    return 0  # sgd without momentum


def _targets(
    shape: ModelShape, targets: Any, default: tuple[str, ...]
) -> list[tuple[str, int, int]]:
    """The linear layers of one decoder layer that `targets` names ("all-linear" or names)."""
    if targets == "all-linear":
        return shape.layer_linears()
    names = tuple(targets) if targets else default
    return [item for item in shape.layer_linears() if any(_matches(item[0], n) for n in names)]


def _matches(layer: str, target: str) -> bool:
    """peft's rule: the layer's name is the target or ends in `.target`."""
    return layer == target or layer.endswith("." + target)


# Mixtures of experts whose transformers 4 checkpoints peft 0.21 converts (transformers'
# `_MODEL_TO_CONVERSION_PATTERN` to "mixtral" or "qwen2_moe"): for "all-linear" it also adapts
# the router and gives the fused gate_up_proj rank 2r (the two matrices it replaces had r each).
PEFT_CONVERTED_MOE = frozenset(
    [
        "mixtral",
        "minimax",
        "minimax_m2",
        "afmoe",
        "deepseek_v2",
        "deepseek_v3",
        "deepseek_v32",
        "dots1",
        "ernie4_5_moe",
        "glm4_moe",
        "glm4_moe_lite",
        "glm_moe_dsa",
        "glm4v_moe",
        "longcat_flash",
        "solar_open",
        "mellum",
        "qwen3_moe",
        "beam",
        "qwen3_omni_moe",
        "qwen3_omni_moe_thinker",
        "qwen3_omni_moe_text",
        "qwen3_next",
        "hunyuan_v1_moe",
        "flex_olmo",
        "olmoe",
        "sarvam_mla",
        "exaone_moe",
        "cohere2_moe",
    ]
)


def _expert_targets(shape: ModelShape, targets: Any) -> list[tuple[str, int, int, int]]:
    """(name, in, out, rank multiple) of the fused expert tensors LoRA adapts
    (`studio.methods.targets.lora_targets`, and peft's own conversion)."""
    converted = shape.model_type in PEFT_CONVERTED_MOE
    experts = [
        (name, fan_in, fan_out, 2 if converted and name.endswith("gate_up_proj") else 1)
        for name, fan_in, fan_out in shape.expert_tensors()
    ]
    if targets == "all-linear":
        return experts
    names = tuple(targets or ())
    return [
        (name, fan_in, fan_out, 1)
        for name, fan_in, fan_out, _ in experts
        if any(target in EXPERT_ALIASES[name.split(".")[-1]] for target in names)
    ]


# IA3's default layers where peft has one (its TRANSFORMERS_MODELS_TO_IA3_* tables):
# (targets, feed-forward targets); other architectures by role, as `methods.targets` finds them.
IA3_DEFAULTS = {
    "llama": (("k_proj", "v_proj", "down_proj"), ("down_proj",)),
    "mistral": (("k_proj", "v_proj", "down_proj"), ("down_proj",)),
    "gemma": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
    "gemma2": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
    "gemma3_text": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
    "qwen2": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
    "qwen3": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
    "gpt2": (("c_attn", "mlp.c_proj"), ("mlp.c_proj",)),
    "gpt_neox": (("query_key_value", "dense_4h_to_h"), ("dense_4h_to_h",)),
}
IA3_FEEDFORWARD = ("down_proj", "fc2", "w2", "dense_4h_to_h", "c_proj", "fc_out")


def _ia3_targets(shape: ModelShape, settings: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    targets = tuple(settings.target_modules or ())
    feedforward = tuple(settings.feedforward_modules or ())
    if not targets:
        default = IA3_DEFAULTS.get(shape.model_type)
        if default is None:
            names = [name for name, _, _ in shape.layer_linears()]
            fused = next((n for n in names if n.endswith(("qkv_proj", "query_key_value"))), "")
            key_value = (fused.split(".")[-1],) if fused else ("k_proj", "v_proj")
            default = ((*key_value, "down_proj"), ("down_proj",))
        targets = default[0]
        feedforward = feedforward or default[1]
    if not feedforward:
        feedforward = tuple(
            name
            for name in targets
            if name.split(".")[-1] in IA3_FEEDFORWARD and not name.startswith("attn.")
        )
    return targets, feedforward


@dataclass(frozen=True)
class _Plan:
    """What a method trains, as counts and the activation traits that follow from it."""

    trainable: int
    adapter: int  # trainable parameters added beside the base (fp32), 0 for full / freeze
    trains_base: bool = False  # trainable parameters are base weights (full, freeze)
    layers_with_grad: int = 0  # decoder layers that autograd records (gradient flows into)
    weight_grad_layers: int = 0  # layers whose own weights train (keep their linear inputs)
    extra_tokens: int = 0  # virtual tokens in front of every sequence
    per_token_layer: float = 0.0  # extra activation bytes per token per layer (adapters)


def _plan(shape: ModelShape, settings: Any, act: int) -> _Plan:
    h, layers = shape.hidden_size, shape.num_layers
    name = settings.name
    if name == "full":
        return _Plan(shape.num_parameters, 0, True, layers, layers)
    if name == "freeze":
        first = layers - min(settings.trainable_layers, layers)
        prefixes = tuple(f"model.layers.{i}." for i in range(first, layers))
        trainable = 0
        lowest = layers
        for param, count in shape.parameter_names():
            chosen = (prefixes and param.startswith(prefixes)) or any(
                p in param for p in settings.trainable_patterns
            )
            if chosen:
                trainable += count
                if param.startswith("model.layers."):
                    lowest = min(lowest, int(param.split(".")[2]))
                elif param.startswith("model.embed"):
                    lowest = 0
        return _Plan(trainable, 0, True, layers - lowest, layers - lowest)
    if name == "prompt_tuning":
        tokens = settings.num_virtual_tokens
        return _Plan(tokens * h, tokens * h, layers_with_grad=layers, extra_tokens=tokens)
    if name == "p_tuning":
        tokens, hidden = settings.num_virtual_tokens, settings.encoder_hidden_size
        if settings.encoder_type == "mlp":
            encoder = h * hidden + hidden + hidden * hidden + hidden + hidden * h + h
        else:  # peft: 2-layer bidirectional LSTM, then a 2-layer MLP head
            lstm = 2 * 4 * hidden * (h + hidden + 2) + 2 * 4 * hidden * (2 * hidden + hidden + 2)
            encoder = lstm + (2 * hidden) ** 2 + 2 * hidden + 2 * hidden * h + h
        trainable = tokens * h + encoder
        return _Plan(trainable, trainable, layers_with_grad=layers, extra_tokens=tokens)
    if name == "prefix_tuning":
        tokens, kv = settings.num_virtual_tokens, shape.kv_size
        if settings.projection:
            hidden = settings.encoder_hidden_size
            trainable = (
                tokens * kv + kv * hidden + hidden + hidden * 2 * layers * kv + 2 * layers * kv
            )
        else:
            trainable = tokens * 2 * layers * kv
        return _Plan(trainable, trainable, layers_with_grad=layers)
    if name == "bottleneck":
        places = 2 if settings.location == "both" else 1
        size = settings.bottleneck_size
        trainable = layers * places * (2 * h * size + size + h)
        # Each adapter keeps its (fp32) input, bottleneck activations and dropout mask.
        per_token = places * (4 * h + 8 * size + (size if settings.dropout else 0))
        return _Plan(trainable, trainable, layers_with_grad=layers, per_token_layer=per_token)
    if name in ("lora", "qlora"):
        modules = _targets(shape, settings.target_modules, ("q_proj", "v_proj"))
        rank = settings.rank
        per_layer = sum(rank * (fan_in + fan_out) for _, fan_in, fan_out in modules)
        # peft's ParamWrapper on a fused expert tensor: A (r x experts, in), B (out, r x experts).
        experts = _expert_targets(shape, settings.target_modules)
        per_layer += sum(
            rank * multiple * shape.num_experts * (fan_in + fan_out)
            for _, fan_in, fan_out, multiple in experts
        )
        if (
            experts
            and settings.target_modules == "all-linear"
            and (shape.model_type in PEFT_CONVERTED_MOE)
        ):
            per_layer += rank * (shape.hidden_size + shape.num_experts)  # the router
        if settings.use_dora:
            per_layer += sum(fan_out for _, _, fan_out in modules)
        # lora_A keeps its input: without dropout one copy per distinct input tensor (q, k
        # and v share theirs), with dropout a dropped-out copy and a mask per module. lora_B
        # keeps the rank-r intermediate; DoRA keeps the base output for the magnitude.
        if settings.dropout:
            per_token = sum((act + 1) * fan_in for _, fan_in, _ in modules)
        else:
            inputs = {fan_in_name(module) for module in modules}
            per_token = sum(act * size for size in inputs_sizes(shape, inputs))
        per_token += sum(act * rank for _ in modules)
        if settings.use_dora:
            per_token += sum(act * fan_out for _, _, fan_out in modules)
        trainable = layers * per_layer
        return _Plan(trainable, trainable, layers_with_grad=layers, per_token_layer=per_token)
    if name == "ia3":
        names, feedforward = _ia3_targets(shape, settings)
        modules = _targets(shape, list(names), names)
        sizes = [
            fan_in if any(_matches(module, name) for name in feedforward) else fan_out
            for module, fan_in, fan_out in modules
        ]
        trainable = layers * sum(sizes)
        return _Plan(
            trainable, trainable, layers_with_grad=layers, per_token_layer=act * sum(sizes)
        )
    raise ValueError(f"no memory model for method '{name}'")


FAN_IN = {
    "q_proj": "attn_norm",
    "k_proj": "attn_norm",
    "v_proj": "attn_norm",
    "qkv_proj": "attn_norm",
    "c_attn": "attn_norm",
    "query_key_value": "attn_norm",
    "o_proj": "attn_out",
    "attn.c_proj": "attn_out",
    "dense": "attn_out",
    "gate_proj": "mlp_norm",
    "up_proj": "mlp_norm",
    "gate_up_proj": "mlp_norm",
    "c_fc": "mlp_norm",
    "dense_h_to_4h": "mlp_norm",
    "down_proj": "mlp_hidden",
    "mlp.c_proj": "mlp_hidden",
    "dense_4h_to_h": "mlp_hidden",
}


def fan_in_name(module: tuple[str, int, int]) -> str:
    """Which tensor feeds a linear layer: the layers fed by the same tensor share one copy."""
    name = module[0]
    return FAN_IN.get(".".join(name.split(".")[-2:]), FAN_IN.get(name.split(".")[-1], name))


def inputs_sizes(shape: ModelShape, inputs: set[str]) -> list[int]:
    sizes = {
        "attn_norm": shape.hidden_size,
        "attn_out": shape.q_size,  # reshaped from attention's output: a copy of its own
        "mlp_norm": shape.hidden_size,
        "mlp_hidden": shape.intermediate_size,
    }
    return [sizes.get(name, shape.hidden_size) for name in inputs]


# ------------------------------------------------------------------ activations


def _layer_activation_bytes(shape: ModelShape, act: int, *, weight_grads: bool) -> float:
    """Bytes autograd keeps per token in one Llama-style decoder layer.

    Always: each RMSNorm's fp32 input; attention's query, (repeated) keys and values and its
    output; the MLP's gate output (for SiLU), SiLU output and up output (for the product).
    With the layer's weights training, also the linear layers' inputs and the norms'
    normalized values.
    """
    h, q, inter = shape.hidden_size, shape.q_size, shape.intermediate_size
    # With padding in the batch, transformers repeats keys/values to every head before SDPA.
    # A gated MLP keeps gate output, its activation and up output; an ungated one two tensors,
    # or four with GPT-2's gelu_new (tanh approximation in separate torch ops, each keeping one).
    kept_per_unit = 3 if shape.gated_mlp else (4 if shape.layout == "gpt2" else 2)
    mlp = kept_per_unit * inter * shape.active_experts + 3 * shape.shared_expert_size
    kept = 2 * 4 * h + act * (q + 2 * q + q) + act * mlp
    if weight_grads:
        kept += 2 * act * h  # norm weights' inputs
        kept += 2 * act * h + act * inter  # inputs of q/k/v, gate/up and down projections
    return kept


def activation_bytes(
    shape: ModelShape,
    plan: _Plan,
    *,
    batch_size: int,
    max_length: int,
    act: int,
    residual: int,
    gradient_checkpointing: bool,
    attention: str = "sdpa",
) -> int:
    tokens = batch_size * (max_length + plan.extra_tokens)
    frozen_layer = _layer_activation_bytes(shape, act, weight_grads=False) + plan.per_token_layer
    trained_layer = _layer_activation_bytes(shape, act, weight_grads=True) + plan.per_token_layer
    plain = plan.layers_with_grad - plan.weight_grad_layers
    if attention == "eager":
        scores = batch_size * shape.num_heads * (max_length + plan.extra_tokens) ** 2 * (4 + act)
    else:
        scores = 0
    if gradient_checkpointing and plan.layers_with_grad:
        # One hidden state per layer, and one layer's full set while it is recomputed.
        per_layer = tokens * residual * plan.layers_with_grad
        layers = per_layer + tokens * max(
            trained_layer if plan.weight_grad_layers else frozen_layer, 0
        )
        layers += scores
    else:
        layers = tokens * (plain * frozen_layer + plan.weight_grad_layers * trained_layer)
        layers += scores * plan.layers_with_grad
    # Logits in the compute dtype, the fp32 log-softmax the loss keeps, and at the start of
    # backward one fp32 gradient of the same size.
    logits = tokens * shape.vocab_size * (act + 8)
    return int(layers + logits)


# ------------------------------------------------------------------ the estimate


def estimate_memory(
    model: Any,
    method: Any = "lora",
    *,
    batch_size: int = 1,
    max_length: int = 512,
    gradient_checkpointing: bool = False,
    optimizer: str = "adamw_torch",
    precision: str = "auto",
    device: str = "cuda",
    attention: str = "sdpa",
) -> MemoryEstimate:
    """Estimate the memory of training `model` with `method`.

    `model`: a transformers config, a config.json dict, a model folder, a `ModelShape` or a
    `ModelInfo`. `method`: method settings (`studio.config_methods`) or a method name for its
    defaults. `precision` follows the run config (auto: bf16 on a GPU, fp32 on CPU); `device`
    is where it would train ("cuda" or "cpu").
    """
    shape = ModelShape.from_model(model)
    settings = _settings(method)
    on_gpu = device != "cpu"
    if precision == "auto":
        precision = "bf16" if on_gpu else "fp32"
    half = precision in ("bf16", "fp16")
    act = 2 if half else 4
    weight_bytes = 2 if half and on_gpu else 4  # CPU keeps fp32 weights, autocasts compute
    plan = _plan(shape, settings, act)
    total = shape.num_parameters
    notes: list[str] = []

    if settings.name == "qlora":
        quantized = shape.linear_parameters
        scale = (
            1 / QUANT_BLOCK + 4 / (QUANT_BLOCK * NESTED_BLOCK)
            if settings.double_quant
            else 4 / QUANT_BLOCK
        )
        experts = shape.expert_parameters
        rest = total - quantized - experts
        weights = int(quantized * (0.5 + scale)) + rest * 4 + experts * weight_bytes
        notes.append("QLoRA: linear layers in 4 bits; embeddings, norms and head upcast to fp32")
        if experts:
            notes.append(
                f"QLoRA is refused on this model: bitsandbytes does not quantize its fused "
                f"experts ({experts:,} parameters), counted here unquantized; use LoRA"
            )
    else:
        weights = total * weight_bytes
        if plan.trains_base:  # full / freeze train float32 master weights (methods/precision)
            weights += plan.trainable * (4 - weight_bytes)
    weights += plan.adapter * 4

    grad_bytes = 4  # every trained weight is float32
    gradients = plan.trainable * grad_bytes
    optimizer_bytes = optimizer_state_bytes(optimizer, plan.trainable, grad_bytes)
    activations = activation_bytes(
        shape,
        plan,
        batch_size=batch_size,
        max_length=max_length,
        act=act,
        residual=weight_bytes,
        gradient_checkpointing=gradient_checkpointing,
        attention=attention,
    )
    if shape.approximate:
        notes.append("model shape approximated from its parameter count")
    if optimizer.startswith("paged_") and on_gpu:
        notes.append("paged optimizer: its state can spill to host memory under pressure")
    return MemoryEstimate(
        weights=int(weights),
        gradients=int(gradients),
        optimizer=int(optimizer_bytes),
        activations=int(activations),
        overhead=CUDA_CONTEXT_BYTES if on_gpu else 0,
        total_parameters=total + plan.adapter,
        trainable_parameters=plan.trainable,
        notes=tuple(notes),
    )


def estimate_run(config: Any, model: Any, *, device: str = "cuda") -> MemoryEstimate:
    """`estimate_memory` with the method and hyperparameters of a `RunConfig`."""
    training = config.training
    return estimate_memory(
        model,
        config.method,
        batch_size=training.batch_size,
        max_length=config.data.max_length,
        gradient_checkpointing=training.gradient_checkpointing,
        optimizer=training.optimizer,
        precision=training.precision,
        device=device,
    )
