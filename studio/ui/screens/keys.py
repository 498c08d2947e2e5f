"""The `?` overlay: every key that works on the screen underneath, footer or not.

Read from the screen's active bindings (Textual's own list, after each screen's `check_action`),
so it can never drift from what the keys do; keys that do not apply right now are left out,
like in the footer. `?`, `f1`, `esc` and `q` close it.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Static

# Keys handled by widgets themselves (lists, tables, fields), not in any binding list.
WIDGET_KEYS: tuple[tuple[str, str], ...] = (
    ("↑ ↓ pgup pgdn", "move in lists and tables"),
    ("tab shift+tab", "next / previous field or pane"),
    ("enter", "choose, open or submit"),
    ("esc", "leave a text field (then the keys above work)"),
)


# Movement keys of lists, tables and fields: summed up by WIDGET_KEYS instead of one by one.
MOVEMENT = ("cursor_", "scroll_", "page_", "focus_", "first", "last", "home", "end")


def screen_keys(screen: Screen) -> list[tuple[str, str]]:
    """(key, what it does) for every binding that applies on `screen` now: the screen's own
    keys first, then the focused widget's, then the app's (screens, quit, palette)."""
    app = screen.app
    rows: list[tuple[int, str, str]] = []
    seen: set[str] = set()
    for active in screen.active_bindings.values():
        binding = active.binding
        description = binding.description or binding.tooltip or binding.action
        if not active.enabled or description in seen or binding.system:
            continue
        name = binding.action.split("(")[0].rsplit(".", 1)[-1]  # "app.focus_next": focus_next
        if name.startswith(MOVEMENT) or name == "copy_text":
            continue
        rank = 0 if active.node is screen else 2 if active.node is app else 1
        seen.add(description)
        rows.append((rank, app.get_key_display(binding), description))
    rows.sort(key=lambda row: row[0])
    return [(key, description) for _rank, key, description in rows]


class KeysScreen(ModalScreen[None]):
    """The keys of the screen below, in two columns: key, what it does."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,f1,q", "dismiss", "Close"),
    ]

    def __init__(self, below: Screen, title: str) -> None:
        super().__init__(classes="dialog")
        self.rows = screen_keys(below)
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-body", classes="keys"):
            yield Label(f"Keys: {self.title_text}  (? or esc closes)", id="dialog-title")
            with VerticalScroll(id="dialog-text"):
                yield Static(keys_table(self.rows), id="keys-table")


def keys_table(rows: list[tuple[str, str]]) -> Text:
    text = Text()
    width = max((len(key) for key, _ in [*rows, *WIDGET_KEYS]), default=6) + 2
    for index, (key, description) in enumerate([*rows, *WIDGET_KEYS]):
        if index:
            text.append("\n")
        text.append(f"{key:<{width}}", style="bold")
        text.append(description)
    return text
