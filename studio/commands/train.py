"""`ftstudio train RUN.yaml`: train headless with a progress line (`train_console`), on
several machines with `--nodes` (`train_nodes`)."""

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
    nodes = parser.add_argument_group("several machines (torchrun on every node)")
    nodes.add_argument("--nodes", type=int, help="print the torchrun command for a run on N nodes")
    nodes.add_argument("--node-rank", type=int, default=0, help="this node's number, 0 .. N-1")
    nodes.add_argument("--rendezvous", metavar="HOST:PORT", help="where the nodes meet (node 0)")
    nodes.add_argument("--launch", action="store_true", help="run the printed command here")
    nodes.add_argument(
        "--slurm-script", metavar="FILE", help="write an sbatch script for --nodes N instead"
    )
    nodes.add_argument("--port", type=int, default=29500, help="rendezvous port in the script")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from studio.errors import ConfigError

    if (args.config is None) == (args.resume is None):
        raise ConfigError(
            "give either a run config file or --resume RUN_DIR",
            advice="ftstudio train sample_data/configs/quickstart.yaml, or "
            "ftstudio train --resume runs/NAME",
        )
    if args.nodes is not None or args.slurm_script:
        from studio.commands.train_nodes import print_or_launch, write_slurm_script

        if args.config is None:
            raise ConfigError("a multi-node run starts from a run config file, not --resume")
        if args.slurm_script:
            return write_slurm_script(
                args.config, args.overrides, args.nodes or 1, args.slurm_script, args.port
            )
        return print_or_launch(
            args.config, args.overrides, args.nodes, args.node_rank, args.rendezvous, args.launch
        )
    return train_headless(args.config, args.overrides, quiet=args.quiet, resume=args.resume)


def train_headless(
    config_path: str | None,
    overrides: list[str],
    quiet: bool = False,
    resume: str | None = None,
) -> int:
    """Train `config_path`, or with `resume` go on with a stopped / failed run from its last
    checkpoint; `overrides` (`key=value`) change the config either way, checked alike."""
    # One device trains in-process; several go through torchrun (studio.engine.launcher).
    from studio.commands.train_console import run_session_in_terminal
    from studio.config import load_config, parse_overrides
    from studio.engine.launcher import session_for_config, session_for_resume
    from studio.errors import ConfigError

    if resume is None:
        if config_path is None:
            raise ConfigError(
                "ftstudio train needs a config file or --resume RUN",
                advice="ftstudio train run.yaml  (ftstudio config writes one)",
            )
        config = load_config(config_path, overrides)
        return run_session_in_terminal(
            lambda bus, control: session_for_config(config, bus, control), quiet
        )
    from studio.runs.catalog import find_run

    changes = parse_overrides(overrides)
    run_dir = find_run(resume)
    return run_session_in_terminal(
        lambda bus, control: session_for_resume(run_dir, bus, control, changes=changes), quiet
    )
