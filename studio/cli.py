"""The `ftstudio` command: the TUI by default, headless subcommands for scripts and servers.

Heavy libraries are imported inside the commands that need them, so `ftstudio --help`
answers at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from studio import __version__
from studio.errors import StudioError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftstudio",
        description="Terminal fine-tuning studio for large language models. "
        "Without a command, opens the interactive studio.",
    )
    parser.add_argument("--version", action="version", version=f"ftstudio {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="train headless from a run config (YAML)")
    train.add_argument("config", help="run config file, e.g. sample_data/configs/quickstart.yaml")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set training.learning_rate=1e-4 (repeatable)",
    )
    train.add_argument("--quiet", action="store_true", help="print only the final summary")

    data = commands.add_parser("data", help="check and prepare datasets")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = data_commands.add_parser(
        "check", help="report a dataset's format, record counts and every bad record"
    )
    check.add_argument("file", help="dataset file (.json, .jsonl, .csv, .parquet, .txt)")
    check.add_argument(
        "--format",
        default="auto",
        choices=["auto", "alpaca", "sharegpt", "messages", "preference", "text"],
    )
    check.add_argument("--min-chars", type=int, default=1, help="drop shorter records")
    check.add_argument(
        "--training-type",
        choices=["sft", "dpo", "orpo", "pretrain"],
        help="also check the data fits this training type",
    )
    check.add_argument("--keep-duplicates", action="store_true")

    config = commands.add_parser("config", help="show the run config's fields or defaults")
    config.add_argument("--explain", action="store_true", help="every field with its meaning")
    config.add_argument("--defaults", action="store_true", help="a config with every default")
    config.add_argument("--validate", metavar="FILE", help="check a run config file")

    commands.add_parser("models", help="list models: built-in, and in the Hugging Face cache")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            return _run_tui()
        if args.command == "train":
            from studio.cli_train import train_command

            return train_command(args.config, args.overrides, quiet=args.quiet)
        if args.command == "data" and args.data_command == "check":
            from studio.data import check_main

            return check_main(
                args.file,
                data_format=args.format,
                min_chars=args.min_chars,
                training_type=args.training_type,
                deduplicate=not args.keep_duplicates,
            )
        if args.command == "config":
            return _config_command(args, parser)
        if args.command == "models":
            return _models_command()
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
    parser.print_help()
    return 2


def _run_tui() -> int:
    try:
        from studio.ui.app import run_app
    except ImportError:
        print("the interactive studio is not available in this build", file=sys.stderr)
        return 2
    return run_app()


def _config_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from studio.config import RunConfig, dump_config, load_config
    from studio.config_fields import explain

    if args.validate:
        config = load_config(args.validate)
        print(f"{args.validate}: valid ({config.method.name}, {config.training_type})")
        return 0
    if args.explain:
        print(explain())
        return 0
    if args.defaults:
        print(dump_config(RunConfig()), end="")
        return 0
    parser.parse_args(["config", "--help"])
    return 2


def _models_command() -> int:
    from studio.models.sources import scan_hub_cache
    from studio.models.tiny import TINY_MODEL_NAME, tiny_model_dir

    print(f"{TINY_MODEL_NAME:<48} built-in   {tiny_model_dir()}")
    for model in scan_hub_cache():
        print(f"{model.repo_id:<48} {model.size_bytes / 2**30:7.2f} GiB  {model.path}")
    return 0
