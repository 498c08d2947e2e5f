"""Prompt tuning and P-tuning (v1) through peft: learned virtual tokens before every input.

Prompt tuning learns the virtual token embeddings directly, started from the embeddings of
an init text (repeated or cut to length) or at random. P-tuning produces them with a small
prompt encoder (an MLP, or a bidirectional LSTM and an MLP) from embeddings that train too.

Saving: the standard PEFT folder holds only the final virtual tokens (`prompt_embeddings`,
the encoder's output), which is all inference needs and what plain peft loads. But put back
into a model that trains, peft runs its encoder over those saved outputs (its `load_adapter`,
which the Trainer's resume calls, does exactly that), and the prompt changes. So the models
built here are a small subclass of peft's, `PromptLearningModel`, whose `save_pretrained`
also writes the whole prompt encoder (`ftstudio_prompt_encoder.safetensors`) and whose
`load_adapter` puts it back: final results, Trainer checkpoints and resumed runs all keep
the encoder. Prefix tuning (`studio.methods.prefix`) shares this.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.config import PromptTuningSettings, PTuningSettings
from studio.errors import ConfigError
from studio.methods.memory_plan import MemoryPlan

if TYPE_CHECKING:
    from studio.models.shape import ModelShape

SETTINGS = (PromptTuningSettings, PTuningSettings)

ENCODER_FILE = "ftstudio_prompt_encoder.safetensors"

_MODEL_CLASS: type | None = None


def model_class() -> type:
    """`PromptLearningModel`, defined on first use (it subclasses peft's model)."""
    global _MODEL_CLASS
    if _MODEL_CLASS is not None:
        return _MODEL_CLASS
    from peft import PeftModelForCausalLM

    class PromptLearningModel(PeftModelForCausalLM):
        """peft's causal-LM model that saves and restores its whole prompt encoder too."""

        def save_pretrained(self, save_directory: Any, *args: Any, **kwargs: Any) -> None:
            super().save_pretrained(save_directory, *args, **kwargs)
            if kwargs.get("is_main_process", True):
                save_encoder(self, Path(save_directory))

        def load_adapter(self, model_id: Any, adapter_name: str, *args: Any, **kwargs: Any) -> Any:
            folder = Path(model_id)
            config = self.peft_config.get(adapter_name)
            if (
                config is not None
                and not config.inference_mode
                and (folder / ENCODER_FILE).exists()
            ):
                # Resuming this adapter: the whole encoder is all there is to load (peft would
                # load its output into the encoder's input, which for prefix projection does
                # not even fit).
                return restore_encoder(self, folder, adapter_name)
            return super().load_adapter(model_id, adapter_name, *args, **kwargs)

    _MODEL_CLASS = PromptLearningModel
    return PromptLearningModel


def as_prompt_learning_model(peft_model: Any, cls: type | None = None) -> Any:
    peft_model.__class__ = cls or model_class()
    return peft_model


def save_encoder(model: Any, folder: Path) -> None:
    from safetensors.torch import save_file

    encoder = model.prompt_encoder[model.active_adapter]
    state = {key: value.detach().contiguous().cpu() for key, value in encoder.state_dict().items()}
    save_file(state, str(folder / ENCODER_FILE), metadata={"format": "pt"})


def restore_encoder(model: Any, folder: Path, adapter_name: str) -> Any:
    """Put a saved prompt encoder back into a model that trains (not needed for inference)."""
    from safetensors.torch import load_file

    if model.peft_config[adapter_name].inference_mode:
        return None
    encoder = model.prompt_encoder[adapter_name]
    encoder_file = folder / ENCODER_FILE
    if encoder_file.exists():
        return encoder.load_state_dict(load_file(str(encoder_file)), strict=True)
    if set(encoder.state_dict()) != {"embedding.weight"}:
        raise FileNotFoundError(
            f"{folder} has no {ENCODER_FILE}: it holds only the final virtual tokens, "
            "enough for chat but not to train the prompt encoder further"
        )
    return None


def peft_config(settings: PromptTuningSettings | PTuningSettings) -> Any:
    from peft import PromptEncoderConfig, PromptTuningConfig, TaskType

    if isinstance(settings, PTuningSettings):
        return PromptEncoderConfig(
            task_type=TaskType.CAUSAL_LM,
            num_virtual_tokens=settings.num_virtual_tokens,
            encoder_reparameterization_type=settings.encoder_type.upper(),
            encoder_hidden_size=settings.encoder_hidden_size,
        )
    # Text init is done here with the run's tokenizer (see `init_from_text`), so peft need not
    # load a tokenizer by name; the saved config says RANDOM, which only matters at creation.
    return PromptTuningConfig(
        task_type=TaskType.CAUSAL_LM,
        num_virtual_tokens=settings.num_virtual_tokens,
        prompt_tuning_init="RANDOM",
    )


def apply(model: Any, settings: PromptTuningSettings | PTuningSettings, context: Any = None) -> Any:
    from peft import get_peft_model

    peft_model = as_prompt_learning_model(get_peft_model(model, peft_config(settings)))
    if isinstance(settings, PromptTuningSettings) and settings.init_text:
        tokenizer = getattr(context, "tokenizer", None)
        if tokenizer is None:
            raise ConfigError("prompt tuning from init_text needs the model's tokenizer")
        init_from_text(peft_model, tokenizer, settings.init_text)
    return peft_model


def init_from_text(peft_model: Any, tokenizer: Any, text: str) -> None:
    """Start the virtual tokens from the embeddings of `text`, repeated or cut to length."""
    import torch

    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ConfigError(
            "method.init_text gives no tokens", advice="use a few words, or leave it empty"
        )
    embedding = peft_model.prompt_encoder[peft_model.active_adapter].embedding
    count = embedding.num_embeddings
    ids = (ids * (count // len(ids) + 1))[:count]
    word_embeddings = peft_model.get_input_embeddings()
    with torch.no_grad():
        index = torch.tensor(ids, device=word_embeddings.weight.device)
        embedding.weight.copy_(word_embeddings(index).to(embedding.weight.dtype))


def save(model: Any, folder: Path, settings: Any) -> None:
    model.save_pretrained(str(folder))
    if not (Path(folder) / ENCODER_FILE).exists():  # a plain peft model (loaded for chat)
        save_encoder(model, Path(folder))


def load(
    base_model: Any,
    folder: Path,
    settings: Any,
    *,
    trainable: bool = False,
    model_cls: type | None = None,
) -> Any:
    from peft import PeftConfig, PeftModel, get_peft_model
    from safetensors.torch import load_file

    folder = Path(folder)
    if not trainable:
        model = PeftModel.from_pretrained(base_model, str(folder))
        model.requires_grad_(False)  # peft leaves the virtual tokens trainable even for inference
        return model
    # peft refuses to load a prompt-learning adapter as trainable: build a fresh one from the
    # saved config and put the saved state into it.
    config = PeftConfig.from_pretrained(str(folder))
    config.inference_mode = False
    if hasattr(config, "prompt_tuning_init"):
        config.prompt_tuning_init = "RANDOM"  # overwritten below; no tokenizer to load
    model = as_prompt_learning_model(get_peft_model(base_model, config), model_cls)
    adapter = model.active_adapter
    if (folder / ENCODER_FILE).exists():
        restore_encoder(model, folder, adapter)
    else:
        saved = load_file(str(folder / "adapter_model.safetensors"))
        model.prompt_encoder[adapter]._load_adapter_state_dict(saved)
        restore_encoder(model, folder, adapter)  # raises if the encoder is more than that
    return model


def merge(model: Any) -> Any:
    raise ConfigError("virtual-token methods cannot be merged into the base weights")


def memory_plan(
    shape: ModelShape,
    settings: PromptTuningSettings | PTuningSettings,
    *,
    activation_bytes: int,
    weight_bytes: int,
) -> MemoryPlan:
    """Virtual token embeddings (and P-tuning's prompt encoder); the tokens lengthen every
    sequence, and gradients flow through every layer down to them."""
    h, layers = shape.hidden_size, shape.num_layers
    tokens = settings.num_virtual_tokens
    if isinstance(settings, PromptTuningSettings):
        return MemoryPlan(tokens * h, tokens * h, layers_with_grad=layers, extra_tokens=tokens)
    hidden = settings.encoder_hidden_size
    if settings.encoder_type == "mlp":
        encoder = h * hidden + hidden + hidden * hidden + hidden + hidden * h + h
    else:  # peft: 2-layer bidirectional LSTM, then a 2-layer MLP head
        lstm = 2 * 4 * hidden * (h + hidden + 2) + 2 * 4 * hidden * (2 * hidden + hidden + 2)
        encoder = lstm + (2 * hidden) ** 2 + 2 * hidden + 2 * hidden * h + h
    trainable = tokens * h + encoder
    return MemoryPlan(trainable, trainable, layers_with_grad=layers, extra_tokens=tokens)
