"""`ftstudio runs ...`: list, show, compare, delete, follow, control and triage runs headless."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from studio.formatting import format_bytes, format_duration, format_loss

SUBCOMMANDS = "show, compare, delete, follow, control, triage"


def register(subparsers: argparse._SubParsersAction) -> None:
    from studio.runs.catalog import SORT_KEYS, STATUSES

    parser = subparsers.add_parser(
        "runs",
        help="list past and running runs; show, compare, delete, follow, control, triage",
        description=f"Without an action: list the runs. Actions: {SUBCOMMANDS}.",
    )
    parser.add_argument("--runs-dir", default="runs", help="folder that holds the runs")
    parser.add_argument("--sort", default="date", choices=SORT_KEYS, help="sort key")
    parser.add_argument("--reverse", action="store_true", help="reverse the sort order")
    parser.add_argument(
        "--status", action="append", choices=STATUSES, help="only runs with this status"
    )
    parser.add_argument("--search", help="only runs whose name, model or method contains this")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run_list)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--runs-dir", default=argparse.SUPPRESS, help="folder that holds the runs (default: runs)"
    )
    actions = parser.add_subparsers(dest="runs_command", metavar="ACTION")

    show = actions.add_parser("show", parents=[common], help="a run's summary, config and curve")
    show.add_argument("run", help="run name (or its start) or folder")
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    show.set_defaults(handler=run_show)

    compare = actions.add_parser(
        "compare", parents=[common], help="overlay loss curves and diff the configs"
    )
    compare.add_argument("runs", nargs="+", metavar="RUN", help="two or more runs")
    compare.add_argument("--width", type=int, default=100)
    compare.add_argument("--height", type=int, default=24)
    compare.add_argument("--color", action="store_true", help="plot in colour")
    compare.set_defaults(handler=run_compare)

    delete = actions.add_parser("delete", parents=[common], help="delete a run's folder")
    delete.add_argument("run")
    delete.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(handler=run_delete)

    follow = actions.add_parser(
        "follow", parents=[common], help="attach to a run: its history, then live progress"
    )
    follow.add_argument("run")
    follow.add_argument("--quiet", action="store_true", help="print only the final summary")
    follow.set_defaults(handler=run_follow)

    control = actions.add_parser(
        "control", parents=[common], help="ask a running run to stop, pause, resume or save"
    )
    control.add_argument("run")
    control.add_argument("command", choices=("stop", "pause", "resume", "save"))
    control.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for it")
    control.set_defaults(handler=run_control)

    triage = actions.add_parser(
        "triage", parents=[common], help="why a run ran out of memory, and relaunch it"
    )
    triage.add_argument("run")
    triage.add_argument(
        "--relaunch", metavar="CHANGE", help="apply this change (its key or number) and go on"
    )
    triage.set_defaults(handler=run_triage)


def _run_path(args: argparse.Namespace, ref: str) -> Path:
    from studio.runs.catalog import find_run

    return find_run(ref, args.runs_dir)


def format_table(runs: list) -> str:
    headers = (
        "NAME",
        "DATE",
        "MODEL",
        "METHOD",
        "TYPE",
        "STATUS",
        "STEPS",
        "LOSS",
        "BEST",
        "TIME",
        "ADAPTER",
    )
    rows = []
    for run in runs:
        steps = f"{run.step}/{run.max_steps}" if run.max_steps else str(run.step)
        status = run.status
        if run.state not in (run.status, "stopping"):
            status = f"{run.status} ({run.state})"
        rows.append(
            (
                run.name,
                run.date,
                run.model,
                run.method,
                run.training_type,
                status,
                steps,
                format_loss(run.final_loss),
                format_loss(run.best_loss),
                format_duration(run.duration_seconds) if run.duration_seconds is not None else "-",
                format_bytes(run.adapter_bytes, missing="-"),
            )
        )
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


def run_list(args: argparse.Namespace) -> int:
    from studio.runs.catalog import list_runs

    runs = list_runs(
        args.runs_dir,
        sort=args.sort,
        descending=(args.sort != "date") if args.reverse else None,
        status=args.status,
        search=args.search,
    )
    if args.json:
        print(json.dumps([run.to_dict() for run in runs], indent=2))
        return 0
    if not runs:
        print(f"no runs in {args.runs_dir}")
        return 0
    print(format_table(runs))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from studio.runs.catalog import read_curves, read_run
    from studio.runs.compare import compare_runs, render_loss_overlay

    path = _run_path(args, args.run)
    summary = read_run(path)
    curves = read_curves(path)
    if getattr(args, "json", False):
        data = summary.to_dict()
        data["curves"] = {
            "train_loss": curves.train_loss,
            "eval_loss": curves.eval_loss,
            "learning_rate": curves.learning_rate,
        }
        print(json.dumps(data, indent=2))
        return 0
    print(format_table([summary]))
    print(f"\nfolder: {summary.path}")
    if summary.pid and summary.is_running:
        print(f"training in process {summary.pid}")
    checkpoint = f"newest complete: step {summary.last_checkpoint}" if summary.checkpoints else ""
    print(f"checkpoints: {summary.checkpoints} {checkpoint}".rstrip())
    if summary.damage:
        print(f"damaged: {summary.damage}")
    if summary.error_kind:
        print(f"error ({summary.error_kind}): {summary.error_message or ''}".rstrip())
    if summary.resumable:
        print(f"resume it: ftstudio train --resume {summary.path}")
    if summary.error_kind == "out_of_memory":
        print(f"what would fit: ftstudio runs triage {summary.path}")
    print("\nconfig.yaml:")
    try:
        config_text = (summary.path / "config.yaml").read_bytes().decode("utf-8", "replace")
    except OSError as error:
        config_text = f"(cannot read it: {error.strerror or error})"
    print(config_text.rstrip())
    if curves.train_loss:
        from studio.errors import StudioError

        try:
            overlay = render_loss_overlay(compare_runs([path]), width=80, height=16)
        except StudioError as error:  # a damaged config.yaml: the rest is still worth showing
            overlay = f"(no loss plot: {error.message})"
        print()
        print(overlay)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from studio.errors import ConfigError
    from studio.runs.compare import compare_runs, config_unified_diff, render_loss_overlay

    if len(args.runs) < 2:
        raise ConfigError("compare needs two or more runs")
    paths = [_run_path(args, ref) for ref in args.runs]
    comparison = compare_runs(paths)
    print(render_loss_overlay(comparison, width=args.width, height=args.height, color=args.color))
    print("\nconfig differences:")
    print(comparison.differences_table())
    if len(paths) == 2:
        diff = config_unified_diff(*paths)
        if diff:
            print()
            print(diff.rstrip())
    return 0


def run_delete(args: argparse.Namespace) -> int:
    from studio.runs.deletion import delete_run, plan_delete

    path = _run_path(args, args.run)
    plan = plan_delete(path)
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"{plan.describe()}\nnot deleted: confirm with --yes", file=sys.stderr)
            return 1
        answer = input(f"{plan.describe()}\ndelete it? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("not deleted")
            return 1
    delete_run(path, confirm=True)
    print(f"deleted {plan.name}")
    return 0


def run_follow(args: argparse.Namespace) -> int:
    from studio.commands.train_console import ConsoleProgress
    from studio.engine.follower import RunFollower
    from studio.engine.liveness import effective_state

    path = _run_path(args, args.run)
    follower = RunFollower(path)
    status = follower.run.read_status()
    state = effective_state(status)
    print(
        f"following {follower.path.name} ({state}, pid {status.get('pid')}); "
        "Ctrl-C detaches, the run goes on",
        flush=True,
    )
    try:
        result = follower.follow(ConsoleProgress(quiet=args.quiet))
    except KeyboardInterrupt:
        print("\ndetached; the run goes on", flush=True)
        return 0
    return 0 if result is not None and result.state.value in ("finished", "stopped") else 1


def run_control(args: argparse.Namespace) -> int:
    from studio.engine.remote_control import RemoteControl
    from studio.errors import ConfigError
    from studio.runs.catalog import read_run

    path = _run_path(args, args.run)
    summary = read_run(path)
    if not summary.is_running:
        raise ConfigError(f"run {summary.name} is not running ({summary.status})")
    remote = RemoteControl(path)
    send = {
        "stop": remote.stop,
        "pause": remote.pause,
        "resume": remote.resume,
        "save": remote.request_save,
    }[args.command]
    send()
    if remote.wait_for_ack(timeout=args.timeout):
        print(
            f"{args.command}: sent to {summary.name} (pid {summary.pid}); it takes effect at "
            "the next step"
        )
        return 0
    print(
        f"{args.command}: sent, but {summary.name} did not acknowledge it within "
        f"{args.timeout:.0f} s",
        file=sys.stderr,
    )
    return 1


def run_triage(args: argparse.Namespace) -> int:
    from studio.errors import ConfigError
    from studio.runs.triage import diagnose, relaunch_session

    path = _run_path(args, args.run)
    triage = diagnose(path)
    if triage is None:
        raise ConfigError(f"run {path.name} did not fail for lack of memory")
    if not args.relaunch:
        print(triage.describe())
        print(f"\nrelaunch with one: ftstudio runs triage {path} --relaunch KEY")
        return 0
    choice = (
        triage.choices[int(args.relaunch) - 1]
        if args.relaunch.isdigit() and 0 < int(args.relaunch) <= len(triage.choices)
        else triage.choice(args.relaunch)
    )
    from studio.commands.train_console import run_session_in_terminal

    print(f"relaunching {path.name} with {choice.title}", flush=True)
    return run_session_in_terminal(
        lambda bus, control: relaunch_session(path, choice, bus, control), quiet=False
    )
