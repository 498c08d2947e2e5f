"""`ftstudio config`: explain, print or validate run configs."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="show the run config's fields or defaults")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--explain", action="store_true", help="every field with its meaning")
    group.add_argument("--defaults", action="store_true", help="a config with every default")
    group.add_argument("--validate", metavar="FILE", help="check a run config file")
    parser.set_defaults(handler=run)


def explain_formats() -> str:
    """The dataset formats data.format accepts, with a one-line example each."""
    from studio.data.formats import FORMATS

    lines = ["# dataset formats (data.format; 'auto' detects them from the fields)"]
    for fmt in FORMATS.values():
        lines.append(f"{fmt.name} -> {fmt.kind}: {fmt.fields}")
        lines += [f"    {example}" for example in (fmt.example, *fmt.more_examples)]
    lines.append(
        "files: .json .jsonl .csv .parquet .txt; a folder of such shards or one written by "
        "datasets' save_to_disk; or a hub dataset name (data.split, data.streaming)"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from studio.config import RunConfig, dump_config, explain, load_config

    if args.validate:
        config = load_config(args.validate)
        print(f"{args.validate}: valid ({config.method.name}, {config.training_type})")
    elif args.explain:
        print(explain())
        print()
        print(explain_formats())
    else:
        print(dump_config(RunConfig()), end="")
    return 0
