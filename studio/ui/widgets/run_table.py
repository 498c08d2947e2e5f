"""The runs list: one row per run, marks for compare, a header that sorts on click.

The table only shows what it is given (`show(runs)`); reading the runs folder, filtering and
sorting are `studio.runs.catalog.list_runs`'. Rows are keyed by the run folder's path, so the
cursor and the marks stay on the same runs when the list is read again.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from studio.formatting import format_bytes, format_duration, format_loss
from studio.runs.catalog import RunSummary
from studio.terminal_text import printable
from studio.ui.chrome.glyphs import glyph

# (column key, label, the list_runs sort key it sorts by, or None, width in cells). Fixed
# widths: the columns never jump when the list is read again, and a screenshot does not depend
# on when the table measured its rows.
COLUMNS: tuple[tuple[str, str, str | None, int], ...] = (
    ("mark", " ", None, 1),
    ("name", "name", "name", 28),
    ("status", "status", "status", 22),
    ("steps", "steps", "steps", 9),
    ("loss", "loss", "loss", 8),
    ("best", "best", "best_loss", 8),
    ("method", "method", "method", 13),
    ("type", "type", "type", 8),
    ("model", "model", "model", 24),
    ("date", "date", "date", 16),
    ("time", "time", "duration", 8),
    ("size", "adapter", "size", 9),
)
# Status colours: theme variables (DataTable cells are Rich text, so they are looked up).
STATUS_STYLES = {
    "running": ("success", "bold"),
    "stopped": ("warning", ""),
    "failed": ("error", "bold"),
    "interrupted": ("error", ""),
}
NAME_WIDTH = 28
HORIZONTAL_STEP = 12


def status_text(run: RunSummary) -> str:
    """running (pid 123), failed (out_of_memory), stopped, finished, interrupted, ..."""
    if run.is_running:
        detail = run.state if run.state not in ("running", "stopping") else ""
        pid = f"pid {run.pid}" if run.pid else ""
        inside = ", ".join(part for part in (detail, pid) if part)
        return f"running ({inside})" if inside else "running"
    if run.status == "failed" and run.error_kind:
        return f"failed ({run.error_kind})"
    return run.status


def short_name(name: str, width: int = NAME_WIDTH) -> str:
    """`name` in `width` cells, cut in the middle: run names of a day share their start
    (model-method-type-date) and differ at the end (the time), so both ends stay."""
    if len(name) <= width:
        return name
    tail = min(len(name) // 2, width // 2, 11)  # "1130-093012": day and time
    head = max(width - 1 - tail, 0)
    return name[:head] + glyph("ellipsis") + name[len(name) - tail :]


def steps_text(run: RunSummary) -> str:
    return f"{run.step}/{run.max_steps}" if run.max_steps else str(run.step)


def status_style(run: RunSummary, variables: dict[str, str]) -> str:
    variable, weight = STATUS_STYLES.get(run.status, ("", ""))
    colour = variables.get(variable, "") if variable else ""
    return f"{weight} {colour}".strip()


def row_cells(run: RunSummary, marked: bool, variables: dict[str, str]) -> list[Text]:
    name = short_name(printable(run.name))
    size = format_bytes(run.adapter_bytes) if run.adapter_bytes is not None else "-"
    duration = format_duration(run.duration_seconds) if run.duration_seconds is not None else "-"
    cells = {
        "mark": Text(glyph("dot") if marked else " ", style="bold"),
        "name": Text(name),
        "status": Text(status_text(run), style=status_style(run, variables)),
        "steps": Text(steps_text(run), justify="right"),
        "loss": Text(format_loss(run.final_loss), justify="right"),
        "best": Text(format_loss(run.best_loss), justify="right"),
        "method": Text(printable(run.method)),
        "type": Text(printable(run.training_type)),
        "model": Text(printable(run.model)),
        "date": Text(run.date),
        "time": Text(duration, justify="right"),
        "size": Text(size, justify="right"),
    }
    return [cells[key] for key, *_rest in COLUMNS]


class RunTable(DataTable):
    """Every run of the runs folder; enter opens one, space marks it for compare."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open"),
        Binding("space", "toggle_mark", "Mark for compare", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, fixed_columns=2, id=id)
        self.runs: list[RunSummary] = []
        self.marked: list[Path] = []
        """Runs marked for compare, in the order they were marked."""
        self.sort_key = "date"
        self.descending = True

    def on_mount(self) -> None:
        for key, label, sort, width in COLUMNS:
            self.add_column(Text(label + ("  " if sort else "")), key=key, width=width)
        self._label_sort()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.show(self.runs))

    # ---------------------------------------------------------------- contents

    @property
    def current(self) -> RunSummary | None:
        """The run under the cursor."""
        if not self.runs or not 0 <= self.cursor_row < len(self.runs):
            return None
        return self.runs[self.cursor_row]

    def show(self, runs: list[RunSummary]) -> None:
        """Show these runs in this order; the cursor stays on the run it was on."""
        keep = self.current.path if self.current else None
        present = {run.path for run in runs}
        self.marked = [path for path in self.marked if path in present]
        self.runs = list(runs)
        self.clear()
        variables = self.app.theme_variables
        for run in runs:
            self.add_row(*row_cells(run, run.path in self.marked, variables), key=str(run.path))
        if keep is not None and keep in present:
            self.move_cursor(row=[run.path for run in runs].index(keep), scroll=True)

    def set_sort(self, key: str, descending: bool) -> None:
        self.sort_key, self.descending = key, descending
        self._label_sort()

    def _label_sort(self) -> None:
        # Every sortable label keeps room for the arrow, so no column changes width.
        arrow = " ▼" if self.descending else " ▲"
        for key, label, sort, _width in COLUMNS:
            column = self.columns.get(key)  # type: ignore[call-overload]
            if column is not None and sort is not None:
                column.label = Text(label + (arrow if sort == self.sort_key else "  "))
        self.refresh()

    # Left / right bring the columns that do not fit into view, several cells at a time.
    def action_cursor_right(self) -> None:
        self.scroll_relative(x=HORIZONTAL_STEP, animate=False)

    def action_cursor_left(self) -> None:
        self.scroll_relative(x=-HORIZONTAL_STEP, animate=False)

    # ---------------------------------------------------------------- marks

    def action_toggle_mark(self) -> None:
        run = self.current
        if run is None:
            return
        if run.path in self.marked:
            self.marked.remove(run.path)
        else:
            self.marked.append(run.path)
        self.update_cell(
            str(run.path), "mark", Text(glyph("dot") if run.path in self.marked else " ")
        )
        self.post_message(self.MarksChanged(self))
        if self.cursor_row < len(self.runs) - 1:
            self.move_cursor(row=self.cursor_row + 1)

    class MarksChanged(Message):
        """The runs marked for compare changed."""

        def __init__(self, table: RunTable) -> None:
            super().__init__()
            self.table = table
