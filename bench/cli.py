"""`python -m bench`: run a workload through each arm and report tokens/s, MFU, memory, loss.

Each arm runs in its own process (`bench.worker`), repeated `--repeat` times with the arms
interleaved so that a busy machine slows them alike; the median is reported, and ftstudio's
ratio to each baseline. The record goes to bench/results/ as JSON with the exact command.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.arms import ARMS, BASELINES
from bench.environment import device, load_average, versions
from bench.flops import mfu, stated_peak_tflops, step_flops
from bench.shapes import SHAPES, TINY, shape_of, total_parameters
from bench.workload import Workload, cache_dir, write_dataset
from studio.formatting import format_bytes

VRAM = "peak_vram_allocated_bytes"
LONGEST_LIMIT = 262144  # data.max_length's upper bound
RESULTS = Path(__file__).resolve().parent / "results"
REPO = RESULTS.parent.parent

PRESETS: dict[str, list[dict[str, Any]]] = {
    # This CPU machine: the built-in tiny model, mixed lengths (padding counts).
    "cpu": [
        dict(model=TINY, method="lora", seq=256, batch=8, lengths="mixed", warmup=3, steps=30),
    ],
    # The targets on one H100 / H200 (about 15 minutes with the first weight builds).
    "gpu": [
        dict(model="llama-3-8b", method="lora", seq=4096, batch=1, warmup=5, steps=20),
        dict(model="llama-3-8b", method="qlora", seq=4096, batch=1, warmup=5, steps=20),
        dict(
            model="llama-3-8b",
            method="qlora",
            seq=4096,
            batch=1,
            warmup=5,
            steps=20,
            checkpointing=True,
        ),
        dict(model="llama-3.2-1b", method="lora", seq=4096, batch=4, lengths="mixed", steps=20),
        dict(model="qwen2.5-7b", method="lora", seq=4096, batch=1, warmup=5, steps=20),
    ],
}


def parser() -> argparse.ArgumentParser:
    models = ", ".join([TINY, *SHAPES])
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark ftstudio's fast path against plain transformers + peft and trl.",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), help="run a preset list of workloads")
    p.add_argument("--model", default=TINY, help=f"model shape: {models}")
    p.add_argument("--method", default="lora", choices=["lora", "qlora"])
    p.add_argument("--seq", type=int, default=256, help="sequence length in tokens")
    p.add_argument("--batch", type=int, default=8, help="sequences per step")
    p.add_argument("--lengths", default="fixed", choices=["fixed", "mixed"])
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--rank", type=int, default=16, help="LoRA rank")
    p.add_argument("--repeat", type=int, default=1, help="runs of each arm (median reported)")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma list of: {', '.join(ARMS)}")
    p.add_argument(
        "--checkpointing", action="store_true", help="ftstudio: gradient_checkpointing on"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra ftstudio config override, e.g. training.liger_kernels=off",
    )
    p.add_argument("--peak-tflops", type=float, help="device peak for MFU (default: table)")
    p.add_argument(
        "--longest",
        action="store_true",
        help="instead of timing: double --seq until an arm runs out of memory, per arm",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON record")
    p.add_argument("--no-save", action="store_true", help="print only, write no record")
    p.add_argument("--timeout", type=int, default=1800, help="seconds allowed per arm run")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    arms = [arm.strip() for arm in args.arms.split(",") if arm.strip()]
    unknown = [arm for arm in arms if arm not in ARMS]
    if unknown:
        parser().error(f"unknown arm {unknown[0]!r}; choose from {', '.join(ARMS)}")
    workloads = [Workload(**_preset_row(row, args)) for row in PRESETS.get(args.preset, [])]
    if not workloads:
        workloads = [Workload(**_preset_row({}, args))]
    for workload in workloads:
        shape_of(workload.model)  # an unknown name stops here, before anything runs
        if args.longest:
            record = longest_sequence(workload, arms, args)
        else:
            record = benchmark(workload, arms, args)
        print(render(record))
        if not args.no_save:
            path = save(record, args.out)
            print(f"record: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}\n")
    return 0


def _preset_row(row: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    values = {
        "model": args.model,
        "method": args.method,
        "seq": args.seq,
        "batch": args.batch,
        "lengths": args.lengths,
        "warmup": args.warmup,
        "steps": args.steps,
        "rank": args.rank,
        "checkpointing": args.checkpointing,
        "switches": tuple(args.set),
    }
    values.update(row)
    return values


# ---------------------------------------------------------------- running


def benchmark(workload: Workload, arms: list[str], args: argparse.Namespace) -> dict[str, Any]:
    record = _record_head(workload, arms, args)
    with tempfile.TemporaryDirectory(prefix="ftstudio-bench-") as folder:
        workdir = Path(folder)
        model_dir, data_path = _prepare(workload, workdir)
        runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
        for repeat in range(args.repeat):
            for arm in arms:
                print(f"  {workload.model} {workload.method}: {arm} run {repeat + 1}", flush=True)
                runs[arm].append(_run(arm, workload, model_dir, data_path, workdir, args))
    record["load_average_after"] = load_average()
    peak = args.peak_tflops or stated_peak_tflops(record["device"].get("name", ""))
    record["peak_tflops"] = peak
    source = "datasheet table" if peak else None
    record["peak_source"] = "--peak-tflops" if args.peak_tflops else source
    record["arms"] = {arm: _arm_summary(workload, results, peak) for arm, results in runs.items()}
    record["ratios"] = _ratios(record["arms"])
    return record


def _record_head(workload: Workload, arms: list[str], args: argparse.Namespace) -> dict[str, Any]:
    shape = shape_of(workload.model)
    return {
        "command": "python -m bench " + shlex.join(sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device(),
        "versions": versions(),
        "load_average_before": load_average(),
        "workload": workload.to_dict(),
        "parameters": total_parameters(shape),
        "arm_order": arms,
        "repeats": args.repeat,
    }


def _prepare(workload: Workload, workdir: Path) -> tuple[Path, Path]:
    from transformers import AutoTokenizer

    started = time.perf_counter()
    built = subprocess.run(
        [sys.executable, "-m", "bench.worker", "--prepare", workload.model, str(cache_dir())],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        raise SystemExit(f"error: building the {workload.model} weights failed:\n{built.stderr}")
    model_dir = Path(built.stdout.strip().splitlines()[-1])
    if time.perf_counter() - started > 5:
        print(f"  model folder ready in {time.perf_counter() - started:.0f} s: {model_dir}")
    data_path = workdir / "data.jsonl"
    write_dataset(AutoTokenizer.from_pretrained(model_dir), workload, data_path)
    return model_dir, data_path


def _run(
    arm: str,
    workload: Workload,
    model_dir: Path,
    data_path: Path,
    workdir: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    spec = {
        "arm": arm,
        "workload": workload.to_dict(),
        "model_dir": str(model_dir),
        "data_path": str(data_path),
        "workdir": str(workdir / f"{arm}-{time.monotonic_ns()}"),
    }
    spec_path, result_path = workdir / "spec.json", workdir / "result.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    result_path.unlink(missing_ok=True)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.worker", str(spec_path), str(result_path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=args.timeout,
        )
    except subprocess.TimeoutExpired:
        return {"arm": arm, "ok": False, "error": f"timed out after {args.timeout} s"}
    if not result_path.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        return {"arm": arm, "ok": False, "error": f"worker exited {done.returncode}: {tail}"}
    return json.loads(result_path.read_text("utf-8"))


# ---------------------------------------------------------------- summarising


def _arm_summary(
    workload: Workload, results: list[dict[str, Any]], peak: float | None
) -> dict[str, Any]:
    good = [r for r in results if r.get("ok")]
    summary: dict[str, Any] = {"runs": len(results), "ok_runs": len(good)}
    if not good:
        summary["error"] = results[0].get("error") if results else "not run"
        summary["traceback"] = results[0].get("traceback") if results else None
        summary.update(_memory(results))
        return summary
    shape = shape_of(workload.model)
    per_run = []
    for result in good:
        flops = step_flops(shape, result["lengths"])
        seconds = result["seconds"]
        per_run.append(
            {
                "tokens_per_second": result["tokens"] / seconds,
                "steps_per_second": result["timed_steps"] / seconds,
                "achieved_tflops": flops / seconds / 1e12,
                "mfu": mfu(flops, seconds, peak),
                "time_to_first_step_s": result["time_to_first_step_s"],
                "peak_rss_bytes": result.get("peak_rss_bytes"),
                "peak_vram_allocated_bytes": result.get("peak_vram_allocated_bytes"),
                "peak_vram_reserved_bytes": result.get("peak_vram_reserved_bytes"),
                "first_step_loss": result.get("first_step_loss"),
                "mean_loss": result.get("mean_loss"),
            }
        )
    for key in per_run[0]:
        values = [run[key] for run in per_run if run[key] is not None]
        summary[key] = statistics.median(values) if values else None
    summary["tokens_per_second_all"] = [round(run["tokens_per_second"], 1) for run in per_run]
    summary["timed_tokens"] = good[0]["tokens"]
    summary["padded_tokens"] = [result.get("padded_tokens") for result in good]
    summary["timed_steps"] = good[0]["timed_steps"]
    summary["settings"] = good[0].get("settings", {})
    return summary


def _memory(results: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("peak_rss_bytes", "peak_vram_allocated_bytes", "peak_vram_reserved_bytes")
    return {key: max((r.get(key) or 0 for r in results), default=None) for key in keys}


def _ratios(arms: dict[str, dict[str, Any]]) -> dict[str, Any]:
    fast = arms.get("ftstudio", {})
    ratios: dict[str, Any] = {}
    for baseline in BASELINES:
        base = arms.get(baseline)
        if not base or not base.get("ok_runs") or not fast.get("ok_runs"):
            continue
        ratio: dict[str, Any] = {
            "tokens_per_second": fast["tokens_per_second"] / base["tokens_per_second"]
        }
        for key in ("peak_vram_allocated_bytes", "peak_rss_bytes"):
            if fast.get(key) and base.get(key):
                ratio[key.removesuffix("_bytes")] = fast[key] / base[key]
        ratios[f"ftstudio_vs_{baseline}"] = ratio
    return ratios


def render(record: dict[str, Any]) -> str:
    workload = record["workload"]
    head = (
        f"\n{workload['model']} {workload['method']} r{workload['rank']}, seq {workload['seq']} "
        f"({workload['lengths']}), batch {workload['batch']}, {workload['steps']} timed steps "
        f"after {workload['warmup']}; {record['device']['name']}, x{record['repeats']} runs"
    )
    columns = (
        "arm",
        "tokens/s",
        "steps/s",
        "MFU",
        "TTFS s",
        "peak VRAM",
        "peak RSS",
        "loss step 1",
        "mean loss",
    )
    rows = [columns]
    for arm, data in record["arms"].items():
        if not data.get("ok_runs"):
            failure = "failed: " + str(data.get("error"))[:60]
            rows.append((arm, failure, *[""] * (len(columns) - 2)))
            continue
        rows.append(
            (
                arm,
                f"{data['tokens_per_second']:,.0f}",
                f"{data['steps_per_second']:.2f}",
                f"{100 * data['mfu']:.1f}%" if data.get("mfu") is not None else "n/a",
                f"{data['time_to_first_step_s']:.1f}",
                format_bytes(data.get("peak_vram_allocated_bytes") or None, "n/a"),
                format_bytes(data.get("peak_rss_bytes") or None, "n/a"),
                _loss(data.get("first_step_loss")),
                _loss(data.get("mean_loss")),
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(columns))]
    lines = [head]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    for name, ratio in record.get("ratios", {}).items():
        parts = [f"{ratio['tokens_per_second']:.2f}x tokens/s"]
        if "peak_vram_allocated" in ratio:
            parts.append(f"{ratio['peak_vram_allocated']:.2f}x peak VRAM")
        if "peak_rss" in ratio:
            parts.append(f"{ratio['peak_rss']:.2f}x peak RSS")
        lines.append(f"{name.replace('_', ' ')}: " + ", ".join(parts))
    if record.get("peak_tflops") is None:
        lines.append("MFU: n/a (no stated peak for this device; pass --peak-tflops)")
    return "\n".join(lines)


def _loss(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else ""


def save(record: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    workload = record["workload"]
    name = record["device"]["name"].replace("NVIDIA ", "").replace(" ", "-").lower()
    stamp = record["date"][:16].replace(":", "").replace("-", "")
    kind = "longest" if record.get("longest") else f"seq{workload['seq']}"
    if workload["checkpointing"]:
        kind += "-checkpointing"
    for switch in workload["switches"]:  # training.padding_free=on -> padding_free-on
        kind += "-" + switch.rsplit(".", 1)[-1].replace("=", "-")
    path = folder / f"{stamp}-{name}-{workload['model']}-{workload['method']}-{kind}.json"
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- longest sequence


def longest_sequence(
    workload: Workload, arms: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    """Double the sequence length from --seq until each arm fails; two timed steps each."""
    from dataclasses import replace

    record = _record_head(workload, arms, args)
    record["longest"] = {}
    for arm in arms:
        best: dict[str, Any] | None = None
        failure: str | None = None
        seq = workload.seq
        while seq <= LONGEST_LIMIT:
            trial = replace(workload, seq=seq, batch=1, lengths="fixed", warmup=1, steps=2)
            with tempfile.TemporaryDirectory(prefix="ftstudio-bench-") as folder:
                workdir = Path(folder)
                model_dir, data_path = _prepare(trial, workdir)
                print(f"  {arm}: seq {seq}", flush=True)
                result = _run(arm, trial, model_dir, data_path, workdir, args)
            if not result.get("ok"):
                failure = result.get("error")
                break
            best = {"seq": seq, "peak_vram_allocated_bytes": result.get(VRAM)}
            seq *= 2
        record["longest"][arm] = {"longest_that_trains": best, "failed_at": seq, "error": failure}
    record["arms"] = {}
    return record
