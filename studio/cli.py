"""The `ftstudio` command: the TUI by default, headless subcommands for scripts and servers.

Heavy libraries are imported inside the commands that need them, so `ftstudio --help`
answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from studio import __version__
from studio.commands import COMMAND_MODULES
from studio.errors import ConfigError, StudioError
from studio.terminal_text import SafeTextStream


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftstudio",
        description="Terminal fine-tuning studio for large language models. "
        "Without a command, opens the interactive studio.",
    )
    parser.add_argument("--version", action="version", version=f"ftstudio {__version__}")
    parser.add_argument(
        "--config",
        dest="studio_config",
        metavar="FILE",
        help="open the studio with this run config (YAML) instead of the defaults",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="studio_overrides",
        help="with --config: change one field, e.g. --set training.max_steps=100 (repeatable)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue  # a command still being built is left out, not a crash
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # A headless command prints dataset fields, run names, logs, model output and its own
    # arguments back: all of it goes through `printable`, so no escape sequence from them
    # reaches the terminal raw. The TUI gets the real streams (it escapes what it renders).
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeTextStream(sys.stdout), SafeTextStream(sys.stderr)
    try:
        args = parser.parse_args(argv)
        if args.command is not None:
            return _guarded(lambda: _run_command(parser, args))
    finally:
        sys.stdout, sys.stderr = saved
    return _guarded(lambda: _run_tui(args.studio_config, args.studio_overrides))


def _run_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.studio_config is not None or args.studio_overrides:
        parser.error(
            "--config and --set before a command open the studio with a config; "
            f"put them after the command: ftstudio {args.command} ..."
        )
    return args.handler(args)


def _guarded(command: Callable[[], int]) -> int:
    try:
        return command()
    except StudioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error worth a traceback.
        sys.stderr.close()
        return 0


def _run_tui(config_file: str | None, overrides: list[str]) -> int:
    from studio.ui.app import run_app

    if overrides and config_file is None:
        raise ConfigError(
            "--set changes a config: give the config too",
            advice="ftstudio --config run.yaml --set training.max_steps=100",
        )
    return run_app(config_file, overrides)
