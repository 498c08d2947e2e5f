"""Which attention kernels a model's architecture supports, read before its weights load.

transformers refuses to load a model with a kernel its modelling code does not implement
(Gemma2 has no SDPA path: it needs eager attention for its logit soft-capping). The studio's
`attn_implementation: auto` must therefore pick among what the architecture declares, and an
explicit choice it lacks is replaced (with a warning) rather than failing the load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from studio.config import ModelSettings

# Best first, as `auto` prefers them (flash-attn only where the machine has it).
KERNELS = ("flash_attention_2", "sdpa", "eager")


def supported_attention(
    location: str, settings: ModelSettings | None = None
) -> frozenset[str] | None:
    """Kernels the model class at `location` (folder or hub id) supports; None if unknown
    (config not readable offline, custom code)."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    try:
        config = AutoConfig.from_pretrained(
            location,
            revision=getattr(settings, "revision", None),
            trust_remote_code=bool(getattr(settings, "trust_remote_code", False)),
        )
        model_class = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    except (OSError, ValueError, KeyError, ImportError):
        return None
    return kernels_of(model_class)


def kernels_of(model_class: Any) -> frozenset[str]:
    """The kernels a transformers model class declares support for."""
    kernels = {"eager"}
    if getattr(model_class, "_supports_sdpa", False):
        kernels.add("sdpa")
    if getattr(model_class, "_supports_flash_attn", False):
        kernels.add("flash_attention_2")
    return frozenset(kernels)
