"""`ftstudio data ...`: check datasets before training on them."""

from __future__ import annotations

import argparse

from studio.config import DataFormat, TrainingType


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="check and prepare datasets")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="report a dataset's format, record counts and every bad record"
    )
    check.add_argument("file", help="dataset file (.json, .jsonl, .csv, .parquet, .txt)")
    check.add_argument("--format", default="auto", choices=DataFormat.__args__)
    check.add_argument("--min-chars", type=int, default=1, help="drop shorter records")
    check.add_argument(
        "--training-type",
        choices=TrainingType.__args__,
        help="also check the data fits this training type",
    )
    check.add_argument("--keep-duplicates", action="store_true")
    check.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    from studio.data import check_main

    return check_main(
        args.file,
        data_format=args.format,
        min_chars=args.min_chars,
        training_type=args.training_type,
        deduplicate=not args.keep_duplicates,
    )
