"""What the Config screen shows about the chosen dataset: counts, what was dropped and why,
and the first records exactly as the model will read them (after the chat template).

`build_preview` reads the file and loads the model's tokenizer: call it on a worker thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.config import RunConfig
from studio.data.report import DataReport
from studio.errors import StudioError

PREVIEW_RECORDS = 3
PROBLEMS_SHOWN = 8


@dataclass(frozen=True)
class RecordPreview:
    text: str  # the record as the model reads it
    tokens: int | None  # its length in tokens, when the tokenizer loaded


@dataclass
class DatasetPreview:
    path: str
    report: DataReport | None = None
    kind: str | None = None
    train_count: int = 0
    eval_count: int = 0
    records: list[RecordPreview] = field(default_factory=list)
    error: str | None = None  # the file cannot be used; with advice
    note: str | None = None  # e.g. no tokenizer: records shown without the chat template


_tokenizers: dict[tuple[str, str | None, str], Any] = {}
_tokenizers_lock = threading.Lock()


def _tokenizer(config: RunConfig) -> Any:
    """The run's tokenizer, loaded once per model source and template."""
    from studio.models.loading import load_tokenizer
    from studio.ui.chrome.heavy_imports import ensure_ml_imports

    key = (config.model.source, config.model.chat_template, config.model.chat_template_preset)
    with _tokenizers_lock:
        if key not in _tokenizers:
            ensure_ml_imports()
            _tokenizers[key] = load_tokenizer(config.model)
        return _tokenizers[key]


def build_preview(config: RunConfig, workdir: Path, limit: int = PREVIEW_RECORDS) -> DatasetPreview:
    from studio.data import load_training_data

    preview = DatasetPreview(path=config.data.path)
    try:
        data = load_training_data(
            config.data, config.training_type, seed=config.training.seed, base_dir=workdir
        )
    except StudioError as error:
        preview.error = error.message + (f"\ntry: {error.advice}" if error.advice else "")
        return preview
    preview.report = data.report
    preview.kind = data.kind
    preview.train_count = len(data.train)
    preview.eval_count = len(data.eval)
    tokenizer = None
    try:
        tokenizer = _tokenizer(config)
    except StudioError as error:
        preview.note = f"records shown without the chat template: {error.message}"
    for record in data.train[:limit]:
        preview.records.append(_render(record, data.kind, tokenizer))
    return preview


def _render(record: dict[str, Any], kind: str, tokenizer: Any) -> RecordPreview:
    from studio.data.describe import describe_record

    if kind == "conversation" and tokenizer is not None and tokenizer.chat_template:
        from studio.engine.encoding import fit_tools_to_template, render_conversation

        messages, tools = fit_tools_to_template(tokenizer, record["messages"], record.get("tools"))
        text = render_conversation(tokenizer, messages, tools)
    else:
        text = describe_record(record, kind)
    tokens = None
    if tokenizer is not None:
        tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return RecordPreview(text=text, tokens=tokens)
