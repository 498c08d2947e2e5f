"""Runs: every run in the runs folder, and what can be done with one.

The list is `studio.runs.catalog.list_runs` (read on a thread worker, so a folder of hundreds of
runs never blocks the screen), filtered by text and status and sorted by any column (click a
header, or o / O). The actions are the headless `ftstudio runs` ones: open a run (config,
curves, log), compare marked runs, resume, out-of-memory triage and relaunch, export, re-run
with the config edited, attach to a run another process trains, delete (asked first).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Select

from studio.errors import StudioError
from studio.runs.catalog import SORT_KEYS, STATUSES, RunSummary
from studio.ui.runs.actions import run_action_bindings
from studio.ui.runs.monitor import RunMonitor
from studio.ui.screens.base import StudioScreen
from studio.ui.screens.dialogs import ConfirmScreen, ErrorScreen
from studio.ui.widgets.run_details import RunDetails
from studio.ui.widgets.run_table import COLUMNS, RunTable, status_text

ALL_STATUSES = "all"
# While a listed run trains (here or in another process), the list is read again this often.
LIVE_REFRESH_SECONDS = 3.0
EXPORTED = {"adapter": "the adapter", "merged": "the merged model"}


class RunsScreen(StudioScreen):
    MODE = "runs"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "compare", "Compare"),
        # Triage and attach are not in the footer (80 columns hold no more); the line under
        # the list offers them when they apply, and F1 lists every key.
        *run_action_bindings(footer=("resume", "export", "rerun", "delete")),
        Binding("slash", "filter", "Filter", show=False),
        Binding("o", "sort", "Sort", show=False),
        Binding("O", "reverse_sort", "Reverse sort", show=False),
        Binding("f5", "refresh_runs", "Refresh", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._generation = 0
        self._runs_dir: Path | None = None
        self._monitor_state: object = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="runs-filters"):
            yield Input(
                placeholder="/ filter: name, model or method", id="runs-search", compact=True
            )
            yield Select(
                [("all statuses", ALL_STATUSES), *((status, status) for status in STATUSES)],
                value=ALL_STATUSES,
                allow_blank=False,
                compact=True,
                id="runs-status",
            )
        yield RunTable(id="runs-table")
        yield RunDetails(id="runs-detail")

    @property
    def table(self) -> RunTable:
        return self.query_one("#runs-table", RunTable)

    @property
    def runs_dir(self) -> Path:
        """The folder listed: the config's output.runs_dir, against the working folder."""
        app = self.studio_app
        return app.services.resolve(app.studio.config.output.runs_dir)

    def on_mount(self) -> None:
        self.studio_app.runs.changed.subscribe(self, self._run_changed)
        self.studio_app.config_changed.subscribe(self, self._config_changed)
        self.set_interval(LIVE_REFRESH_SECONDS, self._live_refresh)
        self.table.focus()
        self.action_refresh_runs()

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.action_refresh_runs()

    # ---------------------------------------------------------------- reading the list

    def action_refresh_runs(self) -> None:
        """Read the runs folder again (on a thread); the newest read wins."""
        self._generation += 1
        self._runs_dir = self.runs_dir
        status = self.query_one("#runs-status", Select).value
        table = self.table
        self._read_runs(
            self._generation,
            self._runs_dir,
            table.sort_key,
            table.descending,
            None if status == ALL_STATUSES else str(status),
            self.query_one("#runs-search", Input).value.strip() or None,
        )

    @work(thread=True, group="runs-list", name="Reading the runs folder", exit_on_error=False)
    def _read_runs(
        self,
        generation: int,
        folder: Path,
        sort: str,
        descending: bool,
        status: str | None,
        search: str | None,
    ) -> None:
        from studio.runs.catalog import list_runs

        runs = list_runs(folder, sort=sort, descending=descending, status=status, search=search)
        self.app.call_from_thread(self._show_runs, generation, runs)

    def _show_runs(self, generation: int, runs: list[RunSummary]) -> None:
        if generation != self._generation or not self.is_mounted:
            return  # a newer read is on its way
        self.table.show(runs)
        self._show_detail()

    def _live_refresh(self) -> None:
        if self.is_current and any(run.is_running for run in self.table.runs):
            self.action_refresh_runs()

    def _run_changed(self, monitor: RunMonitor) -> None:
        # A run of this app started, ended or changed state: its row changes.
        state = monitor.state
        if state != self._monitor_state:
            self._monitor_state = state
            if self.is_current:
                self.action_refresh_runs()

    def _config_changed(self, _config: object) -> None:
        if self.runs_dir != self._runs_dir:
            self.action_refresh_runs()

    @on(Input.Changed, "#runs-search")
    @on(Select.Changed, "#runs-status")
    def _filter_changed(self) -> None:
        self.action_refresh_runs()

    @on(Input.Submitted, "#runs-search")
    def _filter_done(self) -> None:
        self.table.focus()

    def home_widget(self) -> RunTable:
        return self.table

    def action_leave_field(self) -> None:
        """esc in the filter clears it and goes back to the list (enter keeps it)."""
        search = self.query_one("#runs-search", Input)
        if self.focused is search:
            search.value = ""
        super().action_leave_field()

    def action_filter(self) -> None:
        self.query_one("#runs-search", Input).focus()

    def action_sort(self) -> None:
        """Sort by the next column."""
        table = self.table
        key = SORT_KEYS[(SORT_KEYS.index(table.sort_key) + 1) % len(SORT_KEYS)]
        self._sort_by(key, key == "date")

    def action_reverse_sort(self) -> None:
        self._sort_by(self.table.sort_key, not self.table.descending)

    @on(DataTable.HeaderSelected, "#runs-table")
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        sort = next((sort for key, _l, sort, _w in COLUMNS if key == event.column_key.value), None)
        if sort is None:
            return
        table = self.table
        same = sort == table.sort_key
        self._sort_by(sort, not table.descending if same else sort == "date")

    def _sort_by(self, key: str, descending: bool) -> None:
        self.table.set_sort(key, descending)
        self.notify(f"sorted by {key}, {'descending' if descending else 'ascending'}", timeout=2)
        self.action_refresh_runs()

    # ---------------------------------------------------------------- the highlighted run

    @on(DataTable.RowHighlighted, "#runs-table")
    @on(RunTable.MarksChanged)
    def _highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        filtered = bool(self.query_one("#runs-search", Input).value.strip()) or (
            self.query_one("#runs-status", Select).value != ALL_STATUSES
        )
        self.query_one("#runs-detail", RunDetails).show(
            self.table.current,
            len(self.table.marked),
            self.runs_dir,
            self.studio_app.services,
            filtered,
        )

    def _current(self, doing: str) -> RunSummary | None:
        run = self.table.current
        if run is None:
            self.notify(f"no run to {doing}: the list is empty", severity="warning")
        return run

    # ---------------------------------------------------------------- actions

    @on(DataTable.RowSelected, "#runs-table")
    def action_open(self) -> None:
        from studio.ui.screens.runs_detail import RunDetailScreen

        run = self._current("open")
        if run is not None:
            self.app.push_screen(RunDetailScreen(run), self._run_action(run))

    def _run_action(self, run: RunSummary):
        async def act(action: str | None) -> None:
            paths = [listed.path for listed in self.table.runs]
            if action and run.path in paths:  # the list may have been read again meanwhile
                self.table.move_cursor(row=paths.index(run.path))
                await self.run_action(action)

        return act

    def action_compare(self) -> None:
        from studio.ui.screens.runs_detail import CompareScreen

        table = self.table
        paths = list(table.marked)
        if len(paths) == 1 and table.current is not None and table.current.path not in paths:
            paths.append(table.current.path)  # one marked run and the one under the cursor
        if len(paths) < 2:
            self.notify(
                "mark two or more runs with space, then press c",
                title="Compare",
                severity="warning",
            )
            return
        try:
            screen = CompareScreen(paths)
        except (StudioError, OSError, ValueError) as error:
            self.app.push_screen(ErrorScreen.from_exception("Cannot compare these runs", error))
            return
        self.app.push_screen(screen)

    def action_resume(self) -> None:
        run = self._current("resume")
        if run is None:
            return
        if run.is_running:
            self.notify(
                f"{run.name} is training (pid {run.pid}); a attaches to it",
                title="Cannot resume",
                severity="warning",
            )
            return
        if run.status == "finished":
            self.notify(
                f"{run.name} has finished; n starts a new run with its config",
                title="Nothing to resume",
                severity="warning",
            )
            return
        if self.studio_app.runs.resume_run(run.path):
            where = f"checkpoint-{run.last_checkpoint}" if run.last_checkpoint else "step 0"
            self.notify(f"resuming {run.name} from {where}")
            self.app.switch_mode("train")

    def action_triage(self) -> None:
        from studio.runs.triage import diagnose
        from studio.ui.screens.runs_dialogs import TriageScreen

        run = self._current("triage")
        if run is None:
            return
        try:
            triage = diagnose(run.path)
        except (StudioError, OSError) as error:
            self.app.push_screen(ErrorScreen.from_exception("Cannot read the run", error))
            return
        if triage is None:
            self.notify(
                f"{run.name} did not run out of memory ({status_text(run)})",
                title="No triage",
                severity="warning",
            )
            return

        def relaunch(choice) -> None:
            if choice is not None and self.studio_app.runs.resume_run(run.path, choice):
                self.notify(f"relaunching {run.name} with {choice.title}")
                self.app.switch_mode("train")

        self.app.push_screen(TriageScreen(triage), relaunch)

    def action_export(self) -> None:
        from studio.ui.screens.runs_dialogs import ExportScreen

        run = self._current("export")
        if run is None:
            return
        if self.studio_app.runs.run_in_use(run.path):
            self.notify(
                f"{run.name} is training in this studio; export it when it ends",
                title="Cannot export",
                severity="warning",
            )
            return
        if run.is_running:
            self.notify(
                f"{run.name} is still training; export it when it ends",
                title="Cannot export",
                severity="warning",
            )
            return
        if run.adapter_bytes is None and run.last_checkpoint is None:
            self.notify(
                f"{run.name} has no adapter and no checkpoint to export",
                title="Cannot export",
                severity="warning",
            )
            return
        self.app.push_screen(ExportScreen(run), lambda request: self._export(run, request))

    def _export(self, run: RunSummary, request) -> None:
        if request is None:
            return
        self.notify(f"exporting {run.name} ({request.kind}) to {request.target}…")
        self._export_worker(run.path, request.target, request.merged)

    @work(thread=True, group="export", name="Export", exit_on_error=False)
    def _export_worker(self, run: Path, target: Path, merged: bool) -> None:
        from studio.runs.export import export_run

        if merged:
            from studio.ui.chrome.heavy_imports import ensure_ml_imports

            ensure_ml_imports()
        result = export_run(run, target, merged=merged)
        where = self.studio_app.services.display(result.path)
        size = result.size_bytes / 2**20
        done = f"exported {EXPORTED[result.kind]} to {where} ({size:.1f} MiB)"
        self.app.call_from_thread(self.notify, done, title="Export")

    def action_rerun(self) -> None:
        run = self._current("re-run")
        if run is not None:
            self.studio_app.runs.rerun(run.path)

    def action_attach(self) -> None:
        run = self._current("attach to")
        if run is None:
            return
        if not run.is_running:
            self.notify(
                f"{run.name} is not training ({status_text(run)}); enter opens it",
                title="Nothing to attach to",
                severity="warning",
            )
            return
        self.studio_app.runs.attach_run(run.path)  # shows the Train screen when it attaches

    def action_delete(self) -> None:
        from studio.runs.deletion import plan_delete

        run = self._current("delete")
        if run is None:
            return
        if self.studio_app.runs.run_in_use(run.path):
            # Its status may still say "stopped" while the resume loads the model.
            self.app.push_screen(
                ErrorScreen(
                    f"Cannot delete {run.name}",
                    "this studio is training it (it is being resumed)",
                    ("stop it on the Train screen (key 3, then x) first",),
                )
            )
            return
        try:
            plan = plan_delete(run.path)
        except (StudioError, OSError) as error:
            self.app.push_screen(ErrorScreen.from_exception(f"Cannot delete {run.name}", error))
            return
        self.app.push_screen(
            ConfirmScreen(
                f"{plan.describe()}\n\nThis cannot be undone.", yes="Delete", no="Keep it"
            ),
            lambda yes: self._delete(run, yes),
        )

    def _delete(self, run: RunSummary, yes: bool | None) -> None:
        from studio.runs.deletion import delete_run

        if not yes:
            return
        try:
            delete_run(run.path, confirm=True)
        except (StudioError, OSError) as error:
            self.app.push_screen(ErrorScreen.from_exception(f"Cannot delete {run.name}", error))
            return
        self.notify(f"deleted {run.name}")
        self.action_refresh_runs()
