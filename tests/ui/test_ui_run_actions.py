"""The actions on a run have the same keys and words on the Runs screen and in the run view,
and each key the run view offers is an action the Runs screen has."""

from __future__ import annotations

import re

from textual.binding import Binding

from studio.ui.runs.actions import RUN_ACTIONS
from studio.ui.screens.runs import RunsScreen
from studio.ui.screens.runs_detail import RunDetailScreen

PICK = re.compile(r"pick\('(\w+)'\)")


def run_action_keys_of_runs_screen(names: set[str]) -> dict[str, tuple[str, str]]:
    """key: (action, description) for the Runs screen's bindings of the actions `names`."""
    return {
        binding.key: (binding.action, binding.description)
        for binding in Binding.make_bindings(RunsScreen.BINDINGS)
        if binding.action in names
    }


def run_action_keys_of_run_view() -> dict[str, tuple[str, str]]:
    """key: (action picked, description) for the run view's bindings that pick a run action."""
    keys = {}
    for binding in Binding.make_bindings(RunDetailScreen.BINDINGS):
        match = PICK.fullmatch(binding.action)
        if match:
            keys[binding.key] = (match.group(1), binding.description)
    return keys


def test_the_runs_screen_and_the_run_view_bind_the_same_keys_to_the_same_run_actions() -> None:
    in_view = run_action_keys_of_run_view()
    names = {name for name, _ in in_view.values()} | {action.name for action in RUN_ACTIONS}
    on_runs_screen = run_action_keys_of_runs_screen(names)
    assert on_runs_screen == in_view
    # Every action of the table, under every one of its keys ("d,delete": both).
    expected = {
        key: (action.name, action.description)
        for action in RUN_ACTIONS
        for key in action.keys.split(",")
    }
    assert in_view == expected


def test_each_action_the_run_view_picks_is_one_the_runs_screen_runs() -> None:
    for name, _description in run_action_keys_of_run_view().values():
        assert callable(getattr(RunsScreen, f"action_{name}", None)), name


def test_no_key_of_a_run_action_is_taken_by_another_binding_of_either_screen() -> None:
    run_keys = {key for action in RUN_ACTIONS for key in action.keys.split(",")}
    for screen in (RunsScreen, RunDetailScreen):
        others = [
            binding.key
            for binding in Binding.make_bindings(screen.BINDINGS)
            if binding.key in run_keys
            and binding.action not in {action.name for action in RUN_ACTIONS}
            and not PICK.fullmatch(binding.action)
        ]
        assert others == [], (screen.__name__, others)
