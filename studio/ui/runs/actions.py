"""The actions on one run and their keys, defined once for the Runs screen and the run view.

The Runs screen runs them on the highlighted run (`RunsScreen.action_<name>`); the run view
(`RunDetailScreen`) closes with the action's name and the Runs screen runs it on that run, so
each action has one implementation and, from this table, the same key and words everywhere.
Which of them a screen's footer shows is the screen's choice (80 columns hold only so many).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class RunAction:
    name: str  # the Runs screen's action: RunsScreen.action_<name>
    keys: str  # Textual's key list, e.g. "d,delete"
    description: str  # in the footer and the `?` overlay


# In the order the footer and the `?` overlay list them.
RUN_ACTIONS: tuple[RunAction, ...] = (
    RunAction("resume", "r", "Resume"),
    RunAction("export", "e", "Export"),
    RunAction("rerun", "n", "Re-run"),
    RunAction("delete", "d,delete", "Delete"),
    RunAction("triage", "t", "Out-of-memory triage"),
    RunAction("attach", "a", "Attach"),
)


def run_action_bindings(
    footer: Collection[str], action: Callable[[str], str] = lambda name: name
) -> list[Binding]:
    """A binding per run action: `action(name)` is the Textual action string the screen runs
    (the name itself, or e.g. "pick('resume')"); those named in `footer` show in the footer."""
    unknown = set(footer) - {run_action.name for run_action in RUN_ACTIONS}
    if unknown:
        raise ValueError(f"not run actions: {', '.join(sorted(unknown))}")
    return [
        Binding(
            run_action.keys,
            action(run_action.name),
            run_action.description,
            show=run_action.name in footer,
        )
        for run_action in RUN_ACTIONS
    ]
