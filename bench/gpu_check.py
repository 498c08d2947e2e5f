"""The one-command GPU check: `python -m bench.gpu_check OUT_DIR`.

On one H100 / H200 it runs, within about six minutes:

1. `install`: whatever ftstudio needs that this Python lacks (bitsandbytes, trl, datasets,
   textual, liger-kernel, pydantic, ...) from the local wheel folder `.whl/` (made beforehand
   by `python -m bench.gpu_wheels`; see bench/README.md), into a folder of its own that the
   later stages put on PYTHONPATH. Nothing is fetched from a registry.
2. `gpu-tests`: `pytest -m gpu tests/gpu` (every CUDA path once), as JUnit XML.
3. `spill`: a QLoRA run with paged_adamw_8bit pressed against memory by a ballast allocation
   until optimizer state spills, with its telemetry.jsonl and a picture of the memory panel
   (`bench.gpu_stages`).
4. `fast-path`: `python -m bench` on a 1B-class model, ftstudio's fast path against plain
   transformers + peft, a few steps each.

Everything lands in OUT_DIR (seven files at most): summary.json (environment, each stage's
outcome and figures), check.log (every stage's output), gpu-tests.xml, spill.json,
telemetry.jsonl, memory-panel.svg, fast-path.json. A stage that fails or runs out of time is
recorded and the next one runs. Without a CUDA GPU the check says so and exits 0;
`--dry-run` runs every stage in miniature on the CPU (tests/bench/test_gpu_check.py).

This module imports only the standard library: the packages it checks for may be missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WHEELS = REPO / ".whl"
SITE = Path(tempfile.gettempdir()) / "ftstudio-gpu-site"
# Modules the studio, its tests and the check import, with the distribution that holds each.
REQUIRED = {
    "torch": "torch",
    "transformers": "transformers",
    "peft": "peft",
    "accelerate": "accelerate",
    "pynvml": "nvidia-ml-py",
    "bitsandbytes": "bitsandbytes",
    "trl": "trl",
    "datasets": "datasets",
    "textual": "textual",
    "textual_plotext": "textual-plotext",
    "pydantic": "pydantic",
    "yaml": "pyyaml",
    "psutil": "psutil",
    "pytest": "pytest",
}
OPTIONAL = {"liger_kernel": "liger-kernel", "triton": "triton"}
# Seconds each stage may take at most (the check as a whole: --budget).
STAGE_LIMITS = {"gpu-tests": 180, "spill": 80, "screenshot": 20, "fast-path": 80}
DRY_RUN_LIMIT = 240  # a loaded CPU: each stage may take this long in a dry run
FAST_PATH_ARGS = [
    "--model", "llama-3.2-1b", "--method", "lora", "--seq", "2048", "--batch", "4",
    "--lengths", "mixed", "--warmup", "2", "--steps", "5", "--arms", "transformers,ftstudio",
]  # fmt: skip
DRY_RUN_FAST_PATH_ARGS = [
    "--steps", "1", "--warmup", "1", "--batch", "2", "--seq", "64",
    "--arms", "transformers,ftstudio",
]  # fmt: skip


class Check:
    """One run of the check: its output folder, log, environment for stages and deadline."""

    def __init__(self, out: Path, budget: float, dry_run: bool) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.dry_run = dry_run
        self.deadline = time.monotonic() + budget
        self.summary: dict[str, Any] = {"dry_run": dry_run, "stages": {}}
        self.output = ""  # the last stage's output
        self.log = (out / "check.log").open("a", encoding="utf-8")
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
        )

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.log.write(text + "\n")
        self.log.flush()

    def run(self, stage: str, command: list[str], limit: float) -> dict[str, Any]:
        """Run one stage's command with at most `limit` seconds (and what the budget has left)."""
        left = self.deadline - time.monotonic()
        seconds = max(min(DRY_RUN_LIMIT if self.dry_run else limit, left), 0)
        if seconds < 10:
            result = {"outcome": "skipped", "reason": "the check's time budget is spent"}
            self.say(f"[{stage}] skipped: the time budget is spent")
            self.summary["stages"][stage] = result
            return result
        self.say(f"[{stage}] {' '.join(command)}  (at most {seconds:.0f} s)")
        started = time.monotonic()
        with tempfile.TemporaryFile("w+", encoding="utf-8") as output:
            try:
                done = subprocess.run(
                    command,
                    cwd=REPO,
                    env=self.env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    timeout=seconds,
                )
                outcome = "passed" if done.returncode == 0 else f"failed (exit {done.returncode})"
            except subprocess.TimeoutExpired:
                outcome = f"timed out after {seconds:.0f} s"
            output.seek(0)
            self.output = output.read()
        self.log.write(self.output)
        result = {"outcome": outcome, "seconds": round(time.monotonic() - started, 1)}
        self.say(f"[{stage}] {outcome} in {result['seconds']} s")
        self.summary["stages"][stage] = result
        return result

    def write_summary(self) -> None:
        text = json.dumps(self.summary, indent=2)
        (self.out / "summary.json").write_text(text + "\n", encoding="utf-8")


# ---------------------------------------------------------------- installing from wheels


def missing_modules(names: dict[str, str], site: Path | None = None) -> list[str]:
    """Modules of `names` that this Python cannot import (with `site` on its path)."""
    if site is not None and site.is_dir() and str(site) not in sys.path:
        sys.path.insert(0, str(site))
        importlib.invalidate_caches()
    return [module for module in names if importlib.util.find_spec(module) is None]


def install_from_wheels(check: Check, wheels: Path) -> dict[str, Any]:
    """Install every wheel of `wheels` into SITE when a module is missing; what happened."""
    missing = missing_modules({**REQUIRED, **OPTIONAL})
    result: dict[str, Any] = {"missing_before": missing, "wheels": str(wheels)}
    files = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
    result["wheel_count"] = len(files)
    # A dry run installs only what it cannot do without (the GPU kernels are optional there).
    needed = missing_modules(REQUIRED) if check.dry_run else missing
    if needed and files:
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
            "--no-compile", "--no-cache-dir", "--upgrade", "--target", str(SITE),
            *map(str, files),
        ]  # fmt: skip
        check.say(f"[install] {len(files)} wheels from {wheels} into {SITE}")
        done = subprocess.run(command, stdout=check.log, stderr=subprocess.STDOUT)
        result["pip_exit"] = done.returncode
    if SITE.is_dir():
        check.env["PYTHONPATH"] = os.pathsep.join([str(SITE), check.env["PYTHONPATH"]])
    result["missing_after"] = missing_modules(REQUIRED, SITE)
    result["optional_missing"] = missing_modules(OPTIONAL, SITE)
    if result["missing_after"]:
        advice = (
            f"no wheels in {wheels}: make them with `python -m bench.gpu_wheels` on a machine "
            "with a package registry and copy the folder here"
            if not files
            else "the wheel folder lacks them: add them to bench/gpu_wheels.py"
        )
        result["advice"] = advice
        check.say(f"[install] still missing: {', '.join(result['missing_after'])}; {advice}")
    check.summary["stages"]["install"] = result
    return result


# ---------------------------------------------------------------- the machine


def describe_machine(check: Check) -> dict[str, Any]:
    """torch's view of the GPU and the versions that matter, read in a stage's environment."""
    code = (
        "import json, importlib.metadata as m, torch\n"
        "info = {'python': __import__('platform').python_version(), 'torch': torch.__version__,"
        " 'cuda': torch.cuda.is_available(), 'cuda_version': torch.version.cuda}\n"
        "if info['cuda']:\n"
        "    p = torch.cuda.get_device_properties(0)\n"
        "    info.update(name=torch.cuda.get_device_name(0), memory_bytes=p.total_memory,"
        " capability=f'{p.major}.{p.minor}', count=torch.cuda.device_count())\n"
        "for name in ('transformers', 'peft', 'trl', 'accelerate', 'bitsandbytes',"
        " 'liger-kernel', 'triton', 'datasets', 'textual', 'nvidia-ml-py', 'flash-attn'):\n"
        "    try: info[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: info[name] = None\n"
        "errors = {}\n"
        f"for module in {sorted({**REQUIRED, **OPTIONAL})!r}:\n"
        "    try: __import__(module)\n"
        "    except Exception as error: errors[module] = f'{type(error).__name__}: {error}'\n"
        "info['import_errors'] = errors\n"
        "print(json.dumps(info))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=check.env, capture_output=True, text=True
    )
    if done.returncode != 0:
        check.say(done.stderr)
        return {"cuda": False, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- stages


def gpu_tests(check: Check) -> None:
    command = [
        sys.executable, "-m", "pytest", "-m", "gpu", "tests/gpu", "-v", "-n", "0",
        "-p", "no:cacheprovider", "--timeout", "150", f"--junitxml={check.out / 'gpu-tests.xml'}",
    ]  # fmt: skip
    if check.dry_run:  # the test ids, one a line
        command[command.index("-v")] = "-q"
        command.append("--collect-only")
    result = check.run("gpu-tests", command, STAGE_LIMITS["gpu-tests"])
    if check.dry_run:  # collected, not run: the test ids are the output
        result["collected"] = [line for line in check.output.splitlines() if "::" in line]
    else:  # pytest writes the XML at the end: a stage cut short has only its -v lines
        result.update(junit_counts(check.out / "gpu-tests.xml") or verbose_outcomes(check.output))


def junit_counts(path: Path) -> dict[str, Any]:
    """Tests, failures, errors and skips from a JUnit XML file, and the failing tests' names."""
    import xml.etree.ElementTree as ElementTree

    if not path.exists():
        return {}
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError:
        return {"junit": "unreadable"}
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return {}
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    counts["not_passed"] = [
        case.get("name")
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    return counts


def verbose_outcomes(output: str) -> dict[str, Any]:
    """Each finished test's outcome from pytest -v lines ("path::test PASSED [ 10%]")."""
    outcomes = {}
    for line in output.splitlines():
        parts = line.split()
        if (
            len(parts) >= 2
            and "::" in parts[0]
            and parts[1] in ("PASSED", "FAILED", "ERROR", "SKIPPED")
        ):
            outcomes[parts[0].split("::", 1)[1]] = parts[1]
    return {"finished": outcomes}


def spill(check: Check) -> None:
    command = [sys.executable, "-m", "bench.gpu_stages", "spill", str(check.out)]
    if check.dry_run:
        command.append("--dry-run")
    result = check.run("spill", command, STAGE_LIMITS["spill"])
    report = check.out / "spill.json"
    if report.exists():
        figures = json.loads(report.read_text(encoding="utf-8"))
        result.update(
            {k: figures.get(k) for k in ("ballast", "largest", "pcie_bytes_per_second_mean")}
        )
    check.run(
        "screenshot", [sys.executable, "-m", "bench.gpu_stages", "screenshot", str(check.out)], 60
    )


def fast_path(check: Check) -> None:
    results = Path(tempfile.mkdtemp(prefix="ftstudio-fast-path-"))
    arguments = DRY_RUN_FAST_PATH_ARGS if check.dry_run else FAST_PATH_ARGS
    limit = DRY_RUN_LIMIT if check.dry_run else STAGE_LIMITS["fast-path"]
    command = [sys.executable, "-m", "bench", *arguments, "--out", str(results)]
    result = check.run("fast-path", [*command, "--timeout", str(limit)], limit)
    records = sorted(results.glob("*.json"))
    if records:
        record = json.loads(records[-1].read_text(encoding="utf-8"))
        (check.out / "fast-path.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
        result["record"] = "fast-path.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gpu_check",
        description="Run the GPU check (tests, paged spill, fast path) and write its figures.",
    )
    parser.add_argument("out", type=Path, help="folder for the results")
    parser.add_argument("--wheels", type=Path, default=WHEELS, help="local wheel folder")
    parser.add_argument(
        "--budget", type=float, help="seconds for all stages (default 360; 900 in a dry run)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="every stage in miniature on the CPU"
    )
    parser.add_argument(
        "--only",
        default="gpu-tests,spill,fast-path",
        help="comma list of stages to run: gpu-tests, spill, fast-path",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    budget = args.budget or (900 if args.dry_run else 360)
    check = Check(args.out, budget, args.dry_run)
    install = install_from_wheels(check, args.wheels)
    if install["missing_after"]:
        check.write_summary()
        return 1
    machine = describe_machine(check)
    check.summary["machine"] = machine
    check.say(f"[machine] {json.dumps(machine)}")
    broken = {m: e for m, e in machine.get("import_errors", {}).items() if m in REQUIRED}
    if broken:  # installed but not importable (a version clash): the stages will say where
        check.say(f"[machine] warning: cannot import {json.dumps(broken)}")
    if not machine.get("cuda") and not args.dry_run:
        check.summary["result"] = "no CUDA GPU on this machine: nothing to check"
        check.say(check.summary["result"])
        check.write_summary()
        return 0
    stages = {"gpu-tests": gpu_tests, "spill": spill, "fast-path": fast_path}
    for name in args.only.split(","):
        if name.strip() in stages:
            stages[name.strip()](check)
            check.write_summary()  # after each stage: a killed check still leaves a summary
    outcomes = [
        stage["outcome"] for stage in check.summary["stages"].values() if "outcome" in stage
    ]
    check.summary["result"] = "passed" if all(o == "passed" for o in outcomes) else "see stages"
    check.write_summary()
    check.say(f"[done] {check.summary['result']}; results in {args.out}")
    return 0 if check.summary["result"] == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
