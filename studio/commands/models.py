"""`ftstudio models`: the models ftstudio can train without a download."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models", help="list models: built-in, and in the Hugging Face cache"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from studio.models.sources import scan_hub_cache
    from studio.models.tiny import TINY_MODEL_NAME, tiny_model_dir

    print(f"{TINY_MODEL_NAME:<48} built-in   {tiny_model_dir()}")
    for model in scan_hub_cache():
        print(f"{model.repo_id:<48} {model.size_bytes / 2**30:7.2f} GiB  {model.path}")
    return 0
