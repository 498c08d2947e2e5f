"""Which layers of a loaded model LoRA and IA3 adapt: found by name and role, checked loudly.

Architectures name their projections differently and some fuse them: Llama has `q_proj`,
`k_proj`, `v_proj`; Phi-3 one `qkv_proj` and one `gate_up_proj`; GPT-2 `c_attn` (a Conv1D);
GPT-NeoX `query_key_value`. A mixture-of-experts in transformers 5 keeps its experts as 3-D
tensors (`mlp.experts.gate_up_proj`, `mlp.experts.down_proj`) that are parameters, not
layers: peft adapts them through `target_parameters` (its `ParamWrapper`), never through
`target_modules`, so "all-linear" alone would silently leave the experts out.

A user's list of names is checked against the model: a name that matches no layer (peft's
rule: the module's name is it, or ends in `.name`) is refused with the names that do exist,
instead of training the part of the list that happened to match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.errors import ConfigError

LINEAR_CLASSES = ("Linear", "Conv1D", "Linear4bit", "Linear8bitLt")
# Expert tensors by leaf name, and the per-expert layer names users write for them.
EXPERT_ALIASES = {
    "gate_up_proj": ("gate_up_proj", "gate_proj", "up_proj", "w1", "w3"),
    "down_proj": ("down_proj", "w2"),
}
# Roles, for IA3 where peft has no default for the architecture: the attention's key and
# value projections (or the fused projection holding them), and the feed-forward output.
KEY_VALUE_NAMES = (("k_proj", "v_proj"), ("qkv_proj",), ("query_key_value",), ("c_attn",))
FEEDFORWARD_OUTPUT_NAMES = ("down_proj", "dense_4h_to_h", "mlp.c_proj", "fc2", "w2", "fc_out")


@dataclass(frozen=True)
class Targets:
    """What an adapter goes on: layers by name, and fused expert tensors by name."""

    modules: list[str] | str  # a list of names, or "all-linear"
    parameters: list[str]  # peft target_parameters, e.g. ["experts.down_proj"]


def module_matches(module_name: str, target: str) -> bool:
    """peft's rule for a name in target_modules."""
    return module_name == target or module_name.endswith("." + target)


def linear_layers(model: Any) -> list[str]:
    """Full names of the linear layers inside the model (lm_head excluded, as in peft)."""
    return [
        name
        for name, module in model.named_modules()
        if type(module).__name__ in LINEAR_CLASSES and name and not name.endswith("lm_head")
    ]


def layer_names(model: Any) -> list[str]:
    """The distinct short names of the linear layers, in model order (`q_proj`, `c_attn`...).
    GPT-2's two `c_proj` are told apart as `attn.c_proj` and `mlp.c_proj`."""
    short: list[str] = []
    full = linear_layers(model)
    for name in full:
        parts = name.split(".")
        leaf = parts[-1]
        clash = any(
            other.split(".")[-1] == leaf and other.split(".")[-2] != parts[-2] for other in full
        )
        label = ".".join(parts[-2:]) if clash and len(parts) > 1 else leaf
        if label not in short:
            short.append(label)
    return short


def fused_experts(model: Any) -> list[str]:
    """Full names of 3-D expert tensors (transformers 5 mixture-of-experts)."""
    return [
        name
        for name, parameter in model.named_parameters()
        if parameter.dim() == 3 and ".experts." in f".{name}"
    ]


def expert_leaf_names(model: Any) -> list[str]:
    names: list[str] = []
    for name in fused_experts(model):
        leaf = name.split(".")[-1]
        if leaf not in names:
            names.append(leaf)
    return names


def check_names(model: Any, names: list[str], field: str, *, experts_too: bool = True) -> None:
    """Refuse names that match no layer (or, for LoRA, expert tensor) of the model, naming
    what exists."""
    layers = linear_layers(model)
    experts = expert_leaf_names(model) if experts_too else []
    aliases = {alias for leaf in experts for alias in EXPERT_ALIASES.get(leaf, (leaf,))}
    missing = [
        name
        for name in names
        if name not in aliases and not any(module_matches(layer, name) for layer in layers)
    ]
    if not missing:
        return
    existing = layer_names(model)
    hint = ""
    fused = [name for name in existing if name in ("qkv_proj", "query_key_value", "c_attn")]
    if fused and any(name in ("q_proj", "k_proj", "v_proj") for name in missing):
        hint = f"; this model computes q, k and v in one fused layer, {fused[0]}"
    if "gate_up_proj" in existing and any(n in ("gate_proj", "up_proj") for n in missing):
        hint += "; gate and up are one fused layer here, gate_up_proj"
    kept = [name for name in names if name not in missing]
    partly = f" (only {', '.join(kept)} would train)" if kept else ""
    expert_text = f"; fused expert tensors: {', '.join(experts)}" if experts else ""
    raise ConfigError(
        f"method.{field}: {', '.join(missing)} match no layer of "
        f"{type(model).__name__}{partly}{hint}",
        advice=f"use names of its linear layers: {', '.join(existing)}{expert_text}; or "
        "'all-linear' for LoRA, or leave IA3's targets empty for its default",
    )


def lora_targets(model: Any, requested: list[str] | str) -> Targets:
    """LoRA's target modules and, on a mixture-of-experts, the expert tensors they mean."""
    experts = expert_leaf_names(model)
    if requested == "all-linear":
        return Targets("all-linear", [f"experts.{leaf}" for leaf in experts])
    names = list(requested)
    check_names(model, names, "target_modules")
    layers = linear_layers(model)
    parameters = [
        f"experts.{leaf}"
        for leaf in experts
        if any(name in EXPERT_ALIASES.get(leaf, (leaf,)) for name in names)
    ]
    # Names that only name expert tensors (gate_up_proj on a model with no such layer) are
    # not passed as modules: peft would refuse a module name that matches nothing.
    modules = [name for name in names if any(module_matches(layer, name) for layer in layers)]
    return Targets(modules, parameters)


def ia3_default_targets(model: Any) -> tuple[list[str], list[str]]:
    """(target_modules, feedforward_modules) for IA3 on a model peft has no default for."""
    layers = linear_layers(model)

    def present(name: str) -> bool:
        return any(module_matches(layer, name) for layer in layers)

    key_value = next((group for group in KEY_VALUE_NAMES if all(map(present, group))), ())
    feedforward = [name for name in FEEDFORWARD_OUTPUT_NAMES if present(name)][:1]
    targets = [*key_value, *feedforward]
    if not key_value or not feedforward:
        raise ConfigError(
            f"IA3 has no default layers for {type(model).__name__}",
            advice="set method.target_modules (and feedforward_modules) to names of its "
            f"linear layers: {', '.join(layer_names(model))}",
        )
    return targets, feedforward
