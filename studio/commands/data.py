"""`ftstudio data ...`: check datasets before training on them, build pre-training corpora."""

from __future__ import annotations

import argparse
from typing import get_args

from studio.config import DataFormat, TrainingType


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="check and prepare datasets")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="report a dataset's format, record counts and every bad record"
    )
    check.add_argument(
        "file",
        help="dataset file (.json, .jsonl, .csv, .parquet, .txt), dataset folder (save_to_disk "
        "or shards) or hub dataset name",
    )
    check.add_argument("--format", default="auto", choices=get_args(DataFormat))
    check.add_argument("--min-chars", type=int, default=1, help="drop shorter records")
    check.add_argument(
        "--training-type",
        choices=get_args(TrainingType),
        help="also check the data fits this training type",
    )
    check.add_argument("--keep-duplicates", action="store_true")
    check.add_argument(
        "--show", type=int, default=3, metavar="N", help="show the first N records as they became"
    )
    check.add_argument("--split", default="train", help="split of a dataset folder or hub dataset")
    check.add_argument(
        "--max-records", type=int, metavar="N", help="read only N records (a hub name streams)"
    )
    check.set_defaults(handler=run_check)
    prepare = actions.add_parser(
        "prepare",
        help="turn a folder of documents (text, Markdown, HTML, PDF, Word, source code; the "
        "type is read from the content) into a pre-training corpus (JSON Lines): main content "
        "only, boilerplate and near-duplicates removed, quality-filtered, split into records",
    )
    prepare.add_argument("folder", help="folder of documents (read recursively), or one file")
    prepare.add_argument(
        "-o", "--output", required=True, help="corpus file to write, e.g. corpus.jsonl"
    )
    prepare.add_argument(
        "--min-chars",
        type=int,
        help="drop pieces shorter than this many characters (default: 100)",
    )
    prepare.add_argument(
        "--max-garbled",
        type=float,
        help="drop pieces whose share of replacement / control / unassigned characters "
        "is above this (default: 0.05)",
    )
    prepare.add_argument(
        "--near-duplicate-threshold",
        type=float,
        help="drop a piece whose estimated Jaccard similarity (word 5-grams, MinHash) with a "
        "kept one is at least this (default: 0.8; 1 drops exact duplicates only)",
    )
    prepare.add_argument(
        "--max-record-chars",
        type=int,
        help="split documents at paragraph boundaries into records of at most this many "
        "characters (default: 8000)",
    )
    prepare.add_argument(
        "--settings",
        metavar="YAML",
        help="every threshold (quality filters, boilerplate, dedup) from a YAML file; see "
        "sample_data/prepare.yaml",
    )
    prepare.add_argument("--report", metavar="FILE", help="also write the report as JSON")
    prepare.set_defaults(handler=run_prepare)
    cache = actions.add_parser(
        "cache",
        help="list the encoded datasets ftstudio keeps to start later runs in seconds, with "
        "their size; --clear removes them",
    )
    cache.add_argument("--clear", action="store_true", help="remove every cached encoding")
    cache.set_defaults(handler=run_cache)


def run_check(args: argparse.Namespace) -> int:
    from studio.data import check_main

    return check_main(
        args.file,
        data_format=args.format,
        min_chars=args.min_chars,
        training_type=args.training_type,
        deduplicate=not args.keep_duplicates,
        show=args.show,
        split=args.split,
        max_records=args.max_records,
    )


def run_prepare(args: argparse.Namespace) -> int:
    from studio.data.prepare import prepare_main

    return prepare_main(
        args.folder,
        args.output,
        settings_path=args.settings,
        report_path=args.report,
        min_chars=args.min_chars,
        max_garbled=args.max_garbled,
        near_duplicate_threshold=args.near_duplicate_threshold,
        max_record_chars=args.max_record_chars,
    )


def run_cache(args: argparse.Namespace) -> int:
    from studio.engine.encoded_cache import cache_listing, clear
    from studio.formatting import format_bytes

    if args.clear:
        removed, freed, running = clear()
        print(f"removed {removed} cached encoding(s), {format_bytes(freed, decimals=1)} freed")
        if running:
            print(f"left {running} preparation(s) that a running ftstudio is writing now")
        return 0
    print(cache_listing())
    return 0
