"""The GPU memory a model needs to train with each method, before anything is loaded.

Computed by `studio.methods.memory.estimate_memory` from the model's config.json (no weights,
no torch), at the run config's sequence length, batch size, optimizer, precision and gradient
checkpointing, and shown part by part: weights, gradients, optimizer state, activations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from studio.config import RunConfig, method_defaults
from studio.formatting import format_bytes
from studio.ui.models.catalog import ModelDetails

if TYPE_CHECKING:
    from rich.console import Group

# (method name, column title) always shown; the config's own method is added when different.
COMPARED_METHODS = (("full", "full"), ("lora", "LoRA"), ("qlora", "QLoRA"))
PARTS = ("weights", "gradients", "optimizer", "activations", "overhead")


class MemoryEstimatePanel(Static):
    """Memory per method for the highlighted model at the config's length and batch size."""

    config: reactive[RunConfig | None] = reactive(None, always_update=True, layout=True)
    """The run config whose sequence length, batch size and options the estimate uses."""
    details: reactive[ModelDetails | None] = reactive(None, always_update=True, layout=True)
    """The inspected model, or None while it is being read."""

    def render(self) -> Group | Text | str:
        if self.details is None or self.details.folder is None or self.config is None:
            return ""
        return memory_table(self.details.folder, self.config, self.details.device)


def compared_method_settings(config: RunConfig, name: str) -> Any:
    """The config's own settings when it uses this method (its rank, targets), else defaults."""
    if config.method.name == name:
        return config.method
    if name == "qlora" and config.method.name == "lora":
        return method_defaults("qlora").model_copy(
            update=config.method.model_dump(exclude={"name"})
        )
    if name == "lora" and config.method.name == "qlora":
        fields = config.method.model_dump(include=set(method_defaults("lora").model_fields))
        return method_defaults("lora").model_copy(update={**fields, "name": "lora"})
    return method_defaults(name)


def memory_table(folder: str, config: RunConfig, device: str = "cuda") -> Group | Text:
    from studio.methods.memory import estimate_run

    training = config.training
    methods = list(COMPARED_METHODS)
    if config.method.name not in {name for name, _ in methods}:
        methods.append((config.method.name, config.method.name))
    estimates = []
    for name, _title in methods:
        try:
            method = compared_method_settings(config, name)
            estimates.append(estimate_run(config, folder, device=device, method=method))
        except (ValueError, KeyError, TypeError, OSError) as error:
            return Text(f"memory estimate not available: {error}", style="italic")
    if device == "cpu":
        # The same estimate the run logs ("memory estimate: ..."), for the CPU it would use.
        heading = Text("Memory to train here (no GPU found: on the CPU, in RAM)", style="bold")
    else:
        heading = Text("GPU memory to train", style="bold")
    heading.append(
        f"\nLoRA on {32 if device == 'cpu' else 16}-bit weights, QLoRA on a 4-bit base; max_length "
        f"{config.data.max_length} × batch {training.batch_size}, {training.optimizer}, "
        f"gradient checkpointing {'on' if training.gradient_checkpointing else 'off'}",
        style="italic",
    )
    table = Table(box=None, padding=(0, 1), show_edge=False, pad_edge=False)
    table.add_column("")
    for name, title in methods:
        chosen = name == config.method.name
        table.add_column(("▸ " if chosen else "") + title, justify="right", no_wrap=True)
    for part in PARTS:
        values = [getattr(estimate, part) for estimate in estimates]
        if part == "overhead" and not any(values):
            continue
        table.add_row(part, *(format_bytes(value) for value in values))
    table.add_row(
        Text("total", style="bold"),
        *(Text(format_bytes(estimate.total), style="bold") for estimate in estimates),
    )
    table.add_row(
        "trainable", *(f"{100 * estimate.trainable_share:.2f}%" for estimate in estimates)
    )
    notes = sorted({note for estimate in estimates for note in estimate.notes})
    footer = Text("\n".join(f"· {note}" for note in notes), style="italic") if notes else ""
    from rich.console import Group

    return Group(heading, table, footer) if footer else Group(heading, table)
