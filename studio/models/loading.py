"""Load a tokenizer and a base model for training or chat, on the best device available."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from studio.config import ModelSettings
from studio.errors import ModelError
from studio.models.sources import ModelSource, resolve_model_source


@dataclass(frozen=True)
class DevicePlan:
    device: str  # "cuda" or "cpu"
    dtype_name: str  # "float32", "bfloat16" or "float16"
    bf16: bool
    fp16: bool


def quiet_libraries() -> None:
    """No progress bars or library chatter on the user's terminal (or over the TUI), for
    training, chat and export alike."""
    import warnings

    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass
    # peft reads a transformers attribute deprecated in v5 when it wraps a model.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)


def plan_device(model: ModelSettings, precision: str = "auto") -> DevicePlan:
    """Pick device and dtype: bf16 where the GPU supports it, fp16 on older GPUs, fp32 on CPU."""
    import torch

    cuda = torch.cuda.is_available()
    if precision == "auto" and not cuda:
        precision = "fp32"
    elif precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and not cuda:
        raise ModelError(
            "fp16 training needs a GPU",
            advice="set training.precision to auto or fp32 on a machine without a GPU",
        )
    dtype: str = model.dtype
    if dtype == "auto":
        dtype = {"bf16": "bfloat16", "fp16": "float16"}.get(precision, "float32")
        if not cuda and precision == "bf16":
            dtype = "float32"  # CPU autocast runs bf16 on fp32 master weights
    return DevicePlan(
        device="cuda" if cuda else "cpu",
        dtype_name=dtype,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
    )


def load_tokenizer(
    settings: ModelSettings,
    source: ModelSource | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Any:
    """The tokenizer, with model.chat_template or the chat-template preset applied
    (`on_note` hears which preset was chosen and why)."""
    from transformers import AutoTokenizer

    from studio.models.chat_templates import choose_chat_template

    source = source or resolve_model_source(settings.source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source.location,
            revision=settings.revision,
            trust_remote_code=settings.trust_remote_code,
        )
    except (OSError, ValueError) as error:
        raise _load_error("tokenizer", source, error) from None
    if settings.chat_template:
        tokenizer.chat_template = settings.chat_template
    else:
        template, note = choose_chat_template(tokenizer, settings.chat_template_preset)
        if template is not None:
            tokenizer.chat_template = template
        if note is not None and on_note is not None:
            on_note(note)
    if tokenizer.pad_token is None:
        # Padding is masked out of the loss, so reusing end-of-sequence is safe.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(
    settings: ModelSettings,
    plan: DevicePlan,
    *,
    quantization_config: Any = None,
    source: ModelSource | None = None,
    attn_implementation: str | None = None,
) -> Any:
    """The base model on the planned device. `attn_implementation` overrides the setting
    (training decides it in `studio.engine.fast_path.choose_attention`)."""
    import torch
    from transformers import AutoModelForCausalLM

    source = source or resolve_model_source(settings.source)
    kwargs: dict[str, Any] = {
        "revision": settings.revision,
        "trust_remote_code": settings.trust_remote_code,
        "dtype": getattr(torch, plan.dtype_name),
    }
    attention = attn_implementation or settings.attn_implementation
    if attention != "auto":
        from studio.models.attention import supported_attention

        supported = supported_attention(source.location, settings)
        # A kernel the architecture lacks would fail the load: transformers then picks.
        if supported is None or attention in supported:
            kwargs["attn_implementation"] = attention
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = {"": 0} if plan.device == "cuda" else {"": "cpu"}
    try:
        model = AutoModelForCausalLM.from_pretrained(source.location, **kwargs)
    except (OSError, ValueError, ImportError) as error:
        raise _load_error("model", source, error) from None
    if quantization_config is None:
        model.to(plan.device)
    elif plan.device == "cpu":
        keep_cpu_4bit_weights_unpacked(model)
    return model


def keep_cpu_4bit_weights_unpacked(model: Any) -> None:
    """Turn off bitsandbytes' CPU inference repacking of 4-bit weights.

    On CPUs with AVX512-BF16, bitsandbytes 0.50 rewrites a 4-bit weight in place into a packed
    layout with bf16 scales the first time a layer runs without gradients in eval mode (chat,
    an eval step). That repacking needs every layer's input width to be a multiple of the
    quantization block (64): it fails on narrower models such as the tiny demo (352-wide MLP),
    and it makes eval compute differently from training on the same weights. The plain path
    dequantizes and multiplies, on every CPU, in training and inference alike.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def _load_error(what: str, source: ModelSource, error: Exception) -> ModelError:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if source.kind == "hub":
        advice = (
            "check the hub id; with HF_HUB_OFFLINE=1 or no network only models already in "
            "the Hugging Face cache load; gated models need `hf auth login`"
        )
    elif "attention" in text.lower():
        advice = "set model.attn_implementation to auto (or eager), which this model supports"
    else:
        advice = f"check that {source.location} holds a complete model saved with save_pretrained"
    return ModelError(f"cannot load {what} from '{source.name}': {text}", advice=advice)
