"""The lines under the runs list: the highlighted run's status, checkpoints, adapter or error,
and the keys that apply to it (the footer has room for the common ones only)."""

from __future__ import annotations

from pathlib import Path

from textual.content import Content
from textual.widgets import Static

from studio.runs.catalog import RunSummary
from studio.ui.chrome.state import StudioServices
from studio.ui.widgets.run_table import status_text, steps_text


class RunDetails(Static):
    """What the highlighted run is and what can be done with it, in four lines."""

    DEFAULT_CSS = """
    RunDetails {
        height: 4;
        padding: 0 1;
        background: $panel;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def show(
        self,
        run: RunSummary | None,
        marked: int,
        runs_dir: Path,
        services: StudioServices,
        filtered: bool,
    ) -> None:
        self.update(detail_text(run, marked, runs_dir, services, filtered))


def detail_text(
    run: RunSummary | None,
    marked: int,
    runs_dir: Path,
    services: StudioServices,
    filtered: bool = False,
) -> Content:
    """Four lines about the run under the cursor: what it is, where, what went wrong, and
    what can be done with it."""
    if run is None and filtered:
        return Content.assemble(
            ("No run matches the filter. ", "bold"),
            "Clear it: / then ctrl+u, and all statuses.",
        )
    if run is None:
        return Content.assemble(
            ("No runs yet ", "bold"),
            f"in {services.display(runs_dir)}/ (the config's output.runs_dir).\n",
            "Train one on the Train screen (key 3); its run shows here.",
        )
    parts: list[str | tuple[str, str]] = [
        (run.name, "bold"),
        f"  {status_text(run)}  step {steps_text(run)}",
    ]
    if run.best_eval_loss is not None:
        parts.append(f"  best eval {run.best_eval_loss:.4f}")
    checkpoint = f", newest step {run.last_checkpoint}" if run.last_checkpoint else ""
    parts.append(f"\n{run.checkpoints} checkpoint(s){checkpoint}  ·  {services.display(run.path)}")
    if run.error_kind:
        message = f": {run.error_message}" if run.error_message else ""
        parts.append((f"\n✗ {run.error_kind}{message}", "$error"))
    elif run.adapter_bytes is not None:
        parts.append(f"\nadapter: {services.display(run.path / 'adapter')}")
    else:
        parts.append("\nno adapter yet")
    hints = []
    if run.is_running:
        hints.append("a attach")
    if run.error_kind == "out_of_memory":
        hints.append("t what would fit")
    if run.resumable:
        start = f"checkpoint-{run.last_checkpoint}" if run.last_checkpoint else "step 0"
        hints.append(f"r resume from {start}")
    hints.append(f"{marked} marked: c compare" if marked else "space mark")
    hints += ["/ filter", "o sort"]
    parts.append(("\n" + " · ".join(hints), "$foreground-muted"))
    return Content.assemble(*parts)
