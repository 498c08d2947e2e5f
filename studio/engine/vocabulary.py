"""Vocabulary extension: add tokens from a file and train their embeddings with the method.

Three steps around the method (hooked from `training.py`):

1. `plan_vocabulary(config)`, before any model loads: read `model.extra_tokens_file` (one
   token per line; blank lines ignored) and refuse what cannot work.
2. `extend(tokenizer, model)`, before the method is applied: add the tokens the tokenizer
   does not know yet and give them embedding rows. New rows beyond the embedding matrix come
   from `resize_token_embeddings(mean_resizing=True)`; rows a model reserved in advance
   (vocabularies padded to a multiple of 64 or 128) are set to the mean embedding.
3. `train_new_tokens(model)`, after the method is applied: make the new rows trainable.
   LoRA / QLoRA use peft's `trainable_token_indices` on the input embeddings and the output
   layer, so only the new rows train and the adapter saves them; other peft methods get the
   whole embedding and output layers as `modules_to_save`; methods that do not wrap the
   model in peft (full, freeze, ...) have the two layers' weights set trainable.

The tokenizer with the new tokens is saved beside the adapter by `training.py`. To load the
result on a fresh base model, first call `match_tokenizer(model, tokenizer)` with that
tokenizer so the embedding matrix has the rows the adapter expects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.errors import ConfigError

if TYPE_CHECKING:
    from studio.config import RunConfig

_LORA_TYPES = ("LORA",)


@dataclass
class VocabularyPlan:
    """The tokens to add (empty: nothing to do) and, once added, their ids."""

    path: str | None = None
    tokens: list[str] = field(default_factory=list)
    added_ids: list[int] = field(default_factory=list)

    def extend(self, tokenizer: Any, model: Any, log: Any = print) -> None:
        if not self.tokens:
            return
        known = tokenizer.get_vocab()
        new = [token for token in self.tokens if token not in known]
        rows_before = model.get_input_embeddings().weight.shape[0]
        if new:
            tokenizer.add_tokens(new)
            self.added_ids = tokenizer.convert_tokens_to_ids(new)
            match_tokenizer(model, tokenizer)
            _start_at_mean(model, [i for i in self.added_ids if i < rows_before])
        rows = model.get_input_embeddings().weight.shape[0]
        skipped = len(self.tokens) - len(new)
        log(
            f"vocabulary: added {len(new)} tokens from {self.path}"
            + (f" ({skipped} already known)" if skipped else "")
            + f"; {len(tokenizer)} tokens, {rows} embedding rows"
        )

    def train_new_tokens(self, model: Any, log: Any = print) -> None:
        if not self.added_ids:
            return
        how = make_rows_trainable(model, self.added_ids)
        log(f"vocabulary: training the {len(self.added_ids)} new tokens' embeddings ({how})")


def plan_vocabulary(config: RunConfig, base_dir: Path | None = None) -> VocabularyPlan:
    """Read `model.extra_tokens_file`; ConfigError for a missing file or an unsuited run."""
    path = config.model.extra_tokens_file
    if not path:
        return VocabularyPlan()
    if config.training_type in ("dpo", "orpo", "kto"):
        raise ConfigError(
            f"model.extra_tokens_file cannot be used with {config.training_type}: new tokens "
            "need text to learn from, and preference losses barely train them",
            advice="extend the vocabulary in an sft or pretrain run, then train preferences "
            "on its merged result",
        )
    if config.method.name in ("prompt_tuning", "p_tuning", "prefix_tuning"):
        raise ConfigError(
            f"model.extra_tokens_file cannot be used with {config.method.name}",
            advice="use lora, qlora, freeze or full to extend the vocabulary",
        )
    local = Path(path).expanduser()
    if not local.is_absolute() and base_dir is not None:
        local = base_dir / local
    try:
        text = local.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"extra tokens file not found: {path}",
            advice="give a text file with one new token per line",
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read extra tokens file {path}: {error}") from None
    tokens = list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
    if not tokens:
        raise ConfigError(
            f"extra tokens file {path} holds no tokens",
            advice="write one new token per line",
        )
    return VocabularyPlan(path=path, tokens=tokens)


def match_tokenizer(model: Any, tokenizer: Any) -> int:
    """Give `model` an embedding row for every token of `tokenizer`; the row count."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
        return len(tokenizer)
    return rows


def _start_at_mean(model: Any, token_ids: list[int]) -> None:
    """Rows a model reserved in advance hold no trained meaning: start them at the mean."""
    if not token_ids:
        return
    import torch

    with torch.no_grad():
        for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
            if layer is None:
                continue
            weight = layer.weight
            others = torch.ones(weight.shape[0], dtype=torch.bool, device=weight.device)
            others[token_ids] = False
            weight[token_ids] = weight[others].mean(dim=0, keepdim=True).to(weight.dtype)


def make_rows_trainable(model: Any, token_ids: list[int]) -> str:
    """Make the rows of `token_ids` trainable after the method is applied; how it was done."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        adapter = model.active_adapter
        peft_config = model.peft_config[adapter]
        inner = model.get_base_model()
        input_name = _module_name(inner, inner.get_input_embeddings())
        output = inner.get_output_embeddings()
        tied = output is None or output.weight is inner.get_input_embeddings().weight
        names = [input_name] if tied else [input_name, _module_name(inner, output)]
        from peft.tuners.tuners_utils import BaseTuner
        from peft.utils.other import set_additional_trainable_modules

        if str(peft_config.peft_type.value) in _LORA_TYPES:
            peft_config.trainable_token_indices = {name: list(token_ids) for name in names}
            how = "peft trainable tokens on " + ", ".join(names)
        else:
            peft_config.modules_to_save = [*(peft_config.modules_to_save or []), *names]
            how = "whole " + " and ".join(names) + " trained and saved with the adapter"
        set_additional_trainable_modules(
            model=inner,
            peft_config=peft_config,
            model_config=BaseTuner.get_model_config(inner),
            adapter_name=adapter,
        )
        return how
    layers = [layer for layer in (model.get_input_embeddings(), model.get_output_embeddings())]
    weights = [layer.weight for layer in layers if layer is not None]
    if all(weight.requires_grad for weight in weights):
        return "the method already trains the embedding and output layers"
    for weight in weights:
        weight.requires_grad_(True)
    return "embedding and output layers set trainable and saved with the method's weights"


def _module_name(root: Any, module: Any) -> str:
    for name, candidate in root.named_modules():
        if candidate is module:
            return name
    raise ValueError("module not found in model")
