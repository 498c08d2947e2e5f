"""`ftstudio models`: the models ftstudio can train: built-in, added in the studio, cached."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list models: built-in, added in the studio, and in the Hugging Face cache",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from studio.formatting import format_bytes
    from studio.models.catalog import list_models
    from studio.models.inspect import folder_size
    from studio.models.tiny import tiny_model_dir
    from studio.user_settings import load_settings

    settings, problem = load_settings()
    if problem:
        print(f"warning: {problem}", file=sys.stderr)
    for entry in list_models(settings.added_models, None, Path.cwd()):
        size_bytes = entry.size_bytes
        if entry.kind == "folder" and entry.folder:
            size_bytes = folder_size(Path(entry.folder))
        size = format_bytes(size_bytes, "", decimals=1)
        where = entry.folder or ""
        if entry.kind == "tiny":
            where = str(tiny_model_dir())
        elif entry.kind == "hub":
            where = "not on disk: downloaded when first used"
        print(f"{entry.source:<48} {entry.kind_label:<9} {size:>10}  {where}".rstrip())
    return 0
