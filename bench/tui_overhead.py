"""What the TUI costs a run: steps/s with the TUI open versus headless, bytes written to the
terminal, and the time to the first painted screen.

Every process runs on a real pseudo-terminal (120x36, like an SSH session), and the parent
reads everything it writes, so the byte counts are what an SSH link would carry.

    python bench/tui_overhead.py                    # 3 rounds, quickstart config, 120 steps
    python bench/tui_overhead.py --rounds 5 --steps 200 --json bench/results/tui_overhead.json

Headless and TUI runs alternate, so a change in machine load hits both alike. Steps/s is
measured from the run's own metrics.jsonl, from the first logged step to the last, so model
loading is left out of both.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import pty
import select
import signal
import struct
import sys
import tempfile
import termios
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "sample_data" / "configs" / "quickstart.yaml"
COLUMNS, ROWS = 120, 36


@dataclass
class PtyResult:
    seconds: float
    bytes_written: int
    first_match_seconds: float | None
    status: int
    # (wall-clock time, bytes so far) every time output arrived
    timeline: list[tuple[float, int]]


def run_on_pty(
    argv: list[str],
    *,
    match: bytes | None = None,
    on_match: bytes | None = None,
    timeout: float = 600.0,
) -> PtyResult:
    """Run `argv` on a new pty and read all it writes; optionally type `on_match` once the
    output contains `match`."""
    pid, master = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm-256color"
        os.environ["COLUMNS"], os.environ["LINES"] = str(COLUMNS), str(ROWS)
        os.execvp(argv[0], argv)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    start = time.monotonic()
    total, seen, matched_at = 0, b"", None
    timeline: list[tuple[float, int]] = []
    status = None
    while True:
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            os.kill(pid, signal.SIGKILL)
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed its side
                chunk = b""
            if chunk:
                total += len(chunk)
                timeline.append((time.time(), total))
                if match is not None and matched_at is None:
                    seen = (seen + chunk)[-4096:]
                    if match in seen:
                        matched_at = time.monotonic() - start
                        if on_match:
                            os.write(master, on_match)
                continue
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(code)
            break
    os.close(master)
    return PtyResult(time.monotonic() - start, total, matched_at, status, timeline)


def logged_steps(run_dir: Path) -> list[tuple[int, float]]:
    """(step, wall-clock time it was logged) for every train step in metrics.jsonl."""
    steps = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("type") == "train":
            steps.append((record["step"], record["time"]))
    return steps


def only_run(folder: Path) -> Path:
    runs = [path for path in folder.iterdir() if path.is_dir()]
    if len(runs) != 1:
        raise SystemExit(f"expected one run in {folder}, found {len(runs)}")
    return runs[0]


def overrides(steps: int, runs_dir: Path) -> list[str]:
    return [
        f"training.max_steps={steps}",
        "training.logging_steps=1",
        f"output.runs_dir={runs_dir}",
    ]


def headless(steps: int, scratch: Path) -> dict:
    runs_dir = scratch / f"headless-{time.monotonic_ns()}"
    argv = [sys.executable, "-m", "studio", "train", str(CONFIG)]
    for item in overrides(steps, runs_dir):
        argv += ["--set", item]
    result = run_on_pty(argv)
    return measured("headless", result, only_run(runs_dir))


def with_tui(steps: int, scratch: Path) -> dict:
    runs_dir = scratch / f"tui-{time.monotonic_ns()}"
    argv = [sys.executable, __file__, "--child-tui", str(runs_dir), "--steps", str(steps)]
    result = run_on_pty(argv)
    return measured("tui", result, only_run(runs_dir))


def measured(mode: str, result: PtyResult, run_dir: Path) -> dict:
    steps = logged_steps(run_dir)
    (first_step, first), (last_step, last) = steps[0], steps[-1]
    status = json.loads((run_dir / "status.json").read_text())
    # Bytes written to the terminal while training (first to last logged step), per second.
    window = [n for t, n in result.timeline if first <= t <= last]
    training_bytes = window[-1] - window[0] if len(window) > 1 else 0
    return {
        "mode": mode,
        "exit_status": result.status,
        "run_state": status.get("state"),
        "steps": last_step,
        "steps_per_second": round((last_step - first_step) / (last - first), 3),
        "wall_seconds": round(result.seconds, 2),
        "terminal_bytes_total": result.bytes_written,
        "terminal_bytes_per_second_training": round(training_bytes / (last - first), 1),
    }


def first_paint(rounds: int) -> list[float]:
    """Seconds from exec to the Models screen's tabs on the terminal; ctrl+q then quits."""
    times = []
    with tempfile.TemporaryDirectory() as home:
        for _ in range(rounds):
            argv = [
                "env",
                f"XDG_CONFIG_HOME={home}",
                sys.executable,
                "-m",
                "studio",
            ]
            result = run_on_pty(argv, match=b"Models", on_match=b"\x11", timeout=60)
            if result.first_match_seconds is None:
                raise SystemExit("the first screen never showed 'Models'")
            times.append(round(result.first_match_seconds, 3))
    return times


def child_tui(runs_dir: Path, steps: int) -> int:
    """The TUI, on this terminal, training the config as soon as it is up; quits at the end."""
    sys.path.insert(0, str(REPO))
    from studio.config import load_config
    from studio.engine.events import RunState
    from studio.ui.app import StudioApp
    from studio.ui.chrome.state import StudioServices

    class AutoStart(StudioApp):
        def on_mount(self) -> None:
            super().on_mount()
            self.studio.config = load_config(CONFIG, overrides(steps, runs_dir))
            self.switch_mode("train")
            self.runs.start_training()
            self.set_interval(0.5, self._quit_when_done)

        def _quit_when_done(self) -> None:
            if (
                self.runs.monitor is not None
                and self.runs.monitor.state
                in (
                    RunState.FINISHED,
                    RunState.STOPPED,
                    RunState.FAILED,
                )
                and not self.runs.training_active
            ):
                self.exit(0)

    with tempfile.TemporaryDirectory() as home:
        services = StudioServices(workdir=REPO, settings_file=Path(home) / "settings.yaml")
        AutoStart(services).run()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--child-tui", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_tui:
        return child_tui(args.child_tui, args.steps)

    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(args.rounds):
            for measure in (headless, with_tui) if round_index % 2 == 0 else (with_tui, headless):
                result = measure(args.steps, Path(scratch))
                result["round"] = round_index
                print(json.dumps(result), flush=True)
                results.append(result)
    paints = first_paint(args.rounds)
    rate = {
        mode: sorted(r["steps_per_second"] for r in results if r["mode"] == mode)
        for mode in ("headless", "tui")
    }
    median = {mode: values[len(values) // 2] for mode, values in rate.items()}
    summary = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/tui_overhead.py", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "load_average_at_end": os.getloadavg(),
        "config": str(CONFIG.relative_to(REPO)),
        "steps": args.steps,
        "terminal": f"{COLUMNS}x{ROWS}",
        "median_steps_per_second": median,
        "tui_over_headless": round(median["tui"] / median["headless"], 4),
        "tui_terminal_bytes_per_second_training": sorted(
            r["terminal_bytes_per_second_training"] for r in results if r["mode"] == "tui"
        ),
        "first_paint_seconds": paints,
        "runs": results,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
