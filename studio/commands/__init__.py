"""Subcommands of `ftstudio`, one module each.

Each module has `register(subparsers)`, which adds its parser and sets `handler` to a
function `(args) -> int`. Registering imports nothing heavy; the handler imports what it needs.
"""

COMMAND_MODULES = (
    "studio.commands.train",
    "studio.commands.data",
    "studio.commands.config",
    "studio.commands.models",
    "studio.commands.chat",
    "studio.commands.runs",
    "studio.commands.export",
)
