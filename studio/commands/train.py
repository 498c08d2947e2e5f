"""`ftstudio train RUN.yaml`: train headless with a progress line."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train headless from a run config (YAML)")
    parser.add_argument(
        "config", nargs="?", help="run config file, e.g. sample_data/configs/quickstart.yaml"
    )
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="go on with a stopped or failed run from its last complete checkpoint, in its "
        "own folder (--set then changes its config)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set training.learning_rate=1e-4 (repeatable)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the final summary")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from studio.cli_train import train_command
    from studio.errors import ConfigError

    if (args.config is None) == (args.resume is None):
        raise ConfigError(
            "give either a run config file or --resume RUN_DIR",
            advice="ftstudio train sample_data/configs/quickstart.yaml, or "
            "ftstudio train --resume runs/NAME",
        )
    return train_command(args.config, args.overrides, quiet=args.quiet, resume=args.resume)
