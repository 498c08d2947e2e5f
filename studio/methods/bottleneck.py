"""Bottleneck adapters, implemented here: down-project, non-linearity, up-project, skip.

Not in peft, and the `adapters` package pins transformers 4, so this is a small torch module.
For each decoder layer an adapter is attached to the attention and/or feed-forward block:

- sequential (Houlsby et al. 2019): on the block's output, `out + s * adapter(out)`;
- parallel (He et al. 2022): beside the block, from its input, `out + s * adapter(x)`;
  "scaled parallel" is parallel with a scaling `s` such as 4.

The up-projection starts at zero, so a fresh adapter leaves the model's outputs unchanged.
Adapters run in float32 whatever the base dtype (like peft's adapters), and their input and
output are cast at the boundary.

How it sits in the model: each adapter is a child module of its block (the base weights keep
their names) and runs from a forward hook on the block. The model's class is swapped for a
subclass that adds `disable_adapter()` (a context manager, as in peft, which chat's compare
mode uses) and a `save_pretrained` that writes only the adapter, so the Trainer's checkpoints
stay small too. Saved: `bottleneck_adapter.safetensors` (adapter weights, by parameter name;
`model.safetensors` in Trainer checkpoints, so that the Trainer's resume restores them) and
`bottleneck_config.json` (the settings and the shapes they were built for).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from studio.config_methods import BottleneckSettings
from studio.errors import ConfigError
from studio.methods.model_parts import (
    ATTENTION_NAMES,
    FEEDFORWARD_NAMES,
    decoder_layers,
    sublayer,
    text_config,
)

WEIGHTS_FILE = "bottleneck_adapter.safetensors"
CHECKPOINT_WEIGHTS_FILE = "model.safetensors"  # in Trainer checkpoints, see save_pretrained
CONFIG_FILE = "bottleneck_config.json"
ADAPTER_NAME = "bottleneck_adapter"


def _adapter_class() -> type:
    """The adapter module class, defined on first use so importing this file needs no torch."""
    global _ADAPTER_CLASS
    if _ADAPTER_CLASS is not None:
        return _ADAPTER_CLASS
    import torch
    from torch import nn

    activations = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}

    class BottleneckAdapter(nn.Module):
        """x -> up(dropout(act(down(x)))) * scaling; the caller adds the skip connection."""

        def __init__(
            self,
            hidden_size: int,
            bottleneck_size: int,
            activation: str,
            dropout: float,
            scaling: float,
        ) -> None:
            super().__init__()
            self.down = nn.Linear(hidden_size, bottleneck_size)
            self.activation = activations[activation]()
            self.dropout = nn.Dropout(dropout)
            self.up = nn.Linear(bottleneck_size, hidden_size)
            self.scaling = scaling
            self.enabled = True
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = x.to(self.down.weight.dtype)
            h = self.up(self.dropout(self.activation(self.down(h))))
            return (h * self.scaling).to(x.dtype)

    _ADAPTER_CLASS = BottleneckAdapter
    return BottleneckAdapter


_ADAPTER_CLASS: type | None = None


class BottleneckModelMixin:
    """Mixed into the model's own class by `apply`: switch adapters off, save only them."""

    bottleneck_settings: BottleneckSettings  # set by `apply`

    def bottleneck_adapters(self) -> dict[str, Any]:
        adapter_class = _adapter_class()
        return {
            name: module
            for name, module in self.named_modules()  # type: ignore[attr-defined]
            if isinstance(module, adapter_class)
        }

    @contextlib.contextmanager
    def disable_adapter(self) -> Iterator[None]:
        """`with model.disable_adapter():` runs the base model alone."""
        adapters = list(self.bottleneck_adapters().values())
        for adapter in adapters:
            adapter.enabled = False
        try:
            yield
        finally:
            for adapter in adapters:
                adapter.enabled = True

    def save_pretrained(self, save_directory: str | Path, *args: Any, **kwargs: Any) -> None:
        """Write the adapter (not the base weights), as peft's save_pretrained does.

        The Trainer calls this for its checkpoints, and on resume loads `model.safetensors`
        from them into the model non-strictly: so the weights go under that name here, which
        restores the adapter alone.
        """
        if kwargs.get("is_main_process", True):
            save(self, Path(save_directory), self.bottleneck_settings, CHECKPOINT_WEIGHTS_FILE)


_MODEL_CLASSES: dict[type, type] = {}


def _with_mixin(model: Any) -> None:
    base_class = type(model)
    if issubclass(base_class, BottleneckModelMixin):
        return
    if base_class not in _MODEL_CLASSES:
        _MODEL_CLASSES[base_class] = type(
            f"Bottleneck{base_class.__name__}", (BottleneckModelMixin, base_class), {}
        )
    model.__class__ = _MODEL_CLASSES[base_class]


def _first_tensor(output: Any) -> Any:
    return output[0] if isinstance(output, tuple) else output


def _replace_first(output: Any, tensor: Any) -> Any:
    return (tensor, *output[1:]) if isinstance(output, tuple) else tensor


def _make_hook(adapter: Any, parallel: bool) -> Any:
    def hook(module: Any, args: tuple, kwargs: dict, output: Any) -> Any:
        if not adapter.enabled:
            return output
        hidden = _first_tensor(output)
        if parallel:
            source = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        else:
            source = hidden
        return _replace_first(output, hidden + adapter(source))

    return hook


def blocks(model: Any, location: str) -> list[tuple[str, Any]]:
    """(qualified name, module) of every block that gets an adapter."""
    layers_name, layers = decoder_layers(model)
    by_location: dict[str, list[tuple[str, ...]]] = {
        "attention": [ATTENTION_NAMES],
        "mlp": [FEEDFORWARD_NAMES],
    }
    kinds = by_location.get(location, [ATTENTION_NAMES, FEEDFORWARD_NAMES])
    found = []
    for index, layer in enumerate(layers):
        for names in kinds:
            part = sublayer(layer, names)
            if part is None:
                raise ConfigError(
                    f"bottleneck: layer {index} of {type(model).__name__} has none of "
                    f"{', '.join(names)}",
                    advice="choose another method.location, or another method",
                )
            found.append((f"{layers_name}.{index}.{part[0]}", part[1]))
    return found


def apply(model: Any, settings: BottleneckSettings, context: Any = None) -> Any:
    """Freeze the model and attach fresh adapters; returns the same model object."""
    if BottleneckModelMixin.bottleneck_adapters(model):
        raise ConfigError("this model already has bottleneck adapters")
    hidden_size = text_config(model).hidden_size
    adapter_class = _adapter_class()
    model.requires_grad_(False)
    parallel = settings.placement == "parallel"
    for _, block in blocks(model, settings.location):
        reference = next(block.parameters())
        adapter = adapter_class(
            hidden_size,
            settings.bottleneck_size,
            settings.activation,
            settings.dropout,
            settings.scaling,
        ).to(reference.device)
        block.add_module(ADAPTER_NAME, adapter)
        block.register_forward_hook(_make_hook(adapter, parallel), with_kwargs=True)
    _with_mixin(model)
    model.bottleneck_settings = settings
    if context is not None and context.gradient_checkpointing:
        # Frozen embeddings: checkpointed layers need an input that asks for gradients.
        model.enable_input_require_grads()
    return model


def adapter_state(model: Any) -> dict[str, Any]:
    return {
        f"{name}.{key}": tensor.detach().contiguous().cpu()
        for name, adapter in BottleneckModelMixin.bottleneck_adapters(model).items()
        for key, tensor in adapter.state_dict().items()
    }


def save(
    model: Any, folder: Path, settings: BottleneckSettings, weights_file: str = WEIGHTS_FILE
) -> None:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(adapter_state(model), str(folder / weights_file), metadata={"format": "pt"})
    config = text_config(model)
    note = {
        "settings": settings.model_dump(mode="json"),
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "base_model": getattr(config, "_name_or_path", None),
    }
    (folder / CONFIG_FILE).write_text(json.dumps(note, indent=2), encoding="utf-8")


def load(
    base_model: Any, folder: Path, settings: BottleneckSettings, *, trainable: bool = False
) -> Any:
    from safetensors.torch import load_file

    folder = Path(folder)
    config_file = folder / CONFIG_FILE
    if config_file.exists():
        saved = json.loads(config_file.read_text(encoding="utf-8"))
        settings = BottleneckSettings.model_validate(saved["settings"])
    model = apply(base_model, settings)
    expected = adapter_state(model)
    weights = folder / WEIGHTS_FILE
    if not weights.exists():
        weights = folder / CHECKPOINT_WEIGHTS_FILE  # a Trainer checkpoint
    tensors = load_file(str(weights))
    if set(tensors) != set(expected):
        missing = sorted(set(expected) - set(tensors))[:3]
        extra = sorted(set(tensors) - set(expected))[:3]
        raise ValueError(
            f"{WEIGHTS_FILE} does not fit this base model (missing {missing}, unexpected "
            f"{extra}); was it trained on another model?"
        )
    result = model.load_state_dict(tensors, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
    for adapter in BottleneckModelMixin.bottleneck_adapters(model).values():
        adapter.requires_grad_(trainable)
    return model


def merge(model: Any) -> Any:
    raise ConfigError("bottleneck adapters cannot be merged: they add a non-linear block")
