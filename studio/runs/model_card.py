"""The README.md model card written beside an exported adapter or merged model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.runs.catalog import RunSummary

if TYPE_CHECKING:
    from studio.config import RunConfig

HYPERPARAMETERS = (
    "epochs",
    "max_steps",
    "learning_rate",
    "scheduler",
    "warmup_ratio",
    "warmup_steps",
    "batch_size",
    "gradient_accumulation",
    "weight_decay",
    "max_grad_norm",
    "optimizer",
    "precision",
    "gradient_checkpointing",
    "packing",
    "assistant_only_loss",
    "seed",
)


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, second = divmod(int(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}h {minute:02d}m {second:02d}s" if hours else f"{minute}m {second:02d}s"


def _method_line(method: dict[str, Any]) -> str:
    details = ", ".join(
        f"{key} {value}"
        for key, value in method.items()
        if key != "name" and value not in (None, [], "")
    )
    return f"{method.get('name', '?')} ({details})" if details else str(method.get("name"))


def _front_matter(config: RunConfig, source_kind: str, merged: bool) -> str:
    import yaml

    meta: dict[str, Any] = {}
    if source_kind == "hub":
        # The hub checks base_model against real repositories: only hub ids go here.
        meta["base_model"] = config.model.source
    meta["library_name"] = "transformers" if merged else "peft"
    meta["pipeline_tag"] = "text-generation"
    meta["tags"] = ["ftstudio", config.method.name, config.training_type]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def _usage(config: RunConfig, merged: bool, repo: str) -> str:
    if merged:
        return (
            "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f'model = AutoModelForCausalLM.from_pretrained("{repo}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{repo}")\n```\n'
        )
    return (
        "```python\nfrom peft import PeftModel\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        f'base = AutoModelForCausalLM.from_pretrained("{config.model.source}")\n'
        f'model = PeftModel.from_pretrained(base, "{repo}")\n'
        f'tokenizer = AutoTokenizer.from_pretrained("{repo}")\n```\n'
    )


def model_card(
    run: Path,
    config: RunConfig,
    summary: RunSummary,
    *,
    merged: bool,
    source_kind: str,
    source_step: int | None = None,
    repo: str = "PATH_OR_REPO",
) -> str:
    """Markdown with hub metadata: base model, method, data, hyperparameters, final metrics."""
    method = config.method.model_dump(mode="json")
    what = "merged model" if merged else "adapter"
    lines = [
        _front_matter(config, source_kind, merged),
        f"# {run.name}",
        "",
        f"`{config.model.source}` fine-tuned ({config.training_type.upper()}) with "
        f"{_method_line(method)}, trained with ftstudio and exported as "
        f"a {what}.",
        "",
    ]
    if source_step is not None:
        lines += [f"Exported from the checkpoint at step {source_step}.", ""]
    lines += ["## Data", ""]
    report = _data_report(run)
    data_format = report.get("format", config.data.format)
    lines.append(f"- file: `{config.data.path}` (format {data_format})")
    if report:
        dropped = report.get("dropped_total", 0)
        lines.append(
            f"- records: {report.get('kept', '?')} used of {report.get('read', '?')} read "
            f"({dropped} dropped)"
        )
    lines.append(f"- longest example: {config.data.max_length} tokens")
    if config.data.eval_path or config.data.eval_fraction:
        held = config.data.eval_path or f"{config.data.eval_fraction:.0%} held out"
        lines.append(f"- eval: {held}")
    lines += ["", "## Hyperparameters", "", "| setting | value |", "|---|---|"]
    training = config.training.model_dump(mode="json")
    for key in HYPERPARAMETERS:
        if training.get(key) is not None:
            lines.append(f"| {key} | {training[key]} |")
    for key, value in method.items():
        if key != "name":
            lines.append(f"| method.{key} | {value} |")
    lines += [
        "",
        "## Results",
        "",
        f"- status: {summary.status} after {summary.step} steps"
        + (f" of {summary.max_steps}" if summary.max_steps else ""),
        f"- final train loss: {_number(summary.final_loss)}",
        f"- best train loss: {_number(summary.best_loss)}",
    ]
    if summary.best_eval_loss is not None:
        lines.append(f"- best eval loss: {_number(summary.best_eval_loss)}")
    lines += [f"- training time: {_duration(summary.duration_seconds)}", "", "## Use", ""]
    lines.append(_usage(config, merged, repo))
    return "\n".join(lines)


def _data_report(run: Path) -> dict[str, Any]:
    try:
        data = json.loads((run / "data_report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
