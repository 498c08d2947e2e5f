"""What a model is, read from its config.json without loading any weights."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.errors import ModelError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    architecture: str
    model_type: str
    num_parameters: int | None
    hidden_size: int | None
    num_layers: int | None
    vocab_size: int | None
    max_positions: int | None
    dtype: str | None
    size_on_disk: int | None
    has_chat_template: bool | None


def folder_size(folder: Path) -> int:
    """Bytes of the weight files in a folder (symlinks into the hub cache followed)."""
    return sum(
        path.stat().st_size
        for path in folder.iterdir()
        if path.is_file() and path.name.endswith(WEIGHT_SUFFIXES)
    )


def read_config_json(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"no config.json in {folder}") from None
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot read {folder / 'config.json'}: {error}") from None


def count_parameters(config: Any) -> int | None:
    """Exact parameter count: build the model on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except (ValueError, KeyError, TypeError, ImportError, RuntimeError):
        return None
    return sum(parameter.numel() for parameter in model.parameters())


def inspect_model_folder(folder: str | Path, name: str | None = None) -> ModelInfo:
    """Describe a local model folder (what save_pretrained or the hub cache holds)."""
    from transformers import AutoConfig

    folder = Path(folder)
    raw = read_config_json(folder)
    try:
        config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError, KeyError) as error:
        raise ModelError(f"cannot read the model config in {folder}: {error}") from None
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    architectures = raw.get("architectures") or [config.model_type]
    return ModelInfo(
        name=name or folder.name,
        architecture=architectures[0],
        model_type=config.model_type,
        num_parameters=count_parameters(config),
        hidden_size=getattr(text_config, "hidden_size", None),
        num_layers=getattr(text_config, "num_hidden_layers", None),
        vocab_size=getattr(text_config, "vocab_size", None),
        max_positions=getattr(text_config, "max_position_embeddings", None),
        dtype=str(raw.get("dtype") or raw.get("torch_dtype") or "") or None,
        size_on_disk=folder_size(folder),
        has_chat_template=_has_chat_template(folder),
    )


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").exists() or (folder / "chat_template.json").exists():
        return True
    try:
        tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return bool(tokenizer_config.get("chat_template"))
