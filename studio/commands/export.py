"""`ftstudio export RUN`: the adapter with a model card, or a merged standalone model."""

from __future__ import annotations

import argparse

from studio.formatting import MIB


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a run's adapter (PEFT) or a merged model, with a model card"
    )
    parser.add_argument("run", help="run name (or its start) or folder")
    parser.add_argument("--runs-dir", default="runs", help="folder that holds the runs")
    parser.add_argument(
        "--merged",
        action="store_true",
        help="fold the adapter into the base weights: a standalone transformers model",
    )
    parser.add_argument(
        "-o", "--output", help="folder to write (default: RUN/exports/adapter or merged)"
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "float32", "bfloat16", "float16"),
        help="weights dtype of a merged model (auto: the training dtype)",
    )
    parser.add_argument(
        "--push-to-hub", metavar="REPO", help="also upload it to this Hugging Face repo"
    )
    parser.add_argument(
        "--public", action="store_true", help="make a new hub repository public (default private)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from studio.runs.catalog import find_run
    from studio.runs.export import export_run, push_to_hub

    path = find_run(args.run, args.runs_dir)
    what = "merged model" if args.merged else "adapter"
    print(f"exporting the {what} of {path.name} ...", flush=True)
    result = export_run(path, args.output, merged=args.merged, dtype=args.dtype)
    source = f" (from checkpoint at step {result.source_step})" if result.source_step else ""
    print(f"{what}{source}: {result.path} ({result.size_bytes / MIB:.1f} MiB)")
    print("  " + ", ".join(result.files))
    if args.push_to_hub:
        url = push_to_hub(result, args.push_to_hub, private=not args.public)
        print(f"uploaded to {url}")
    return 0
