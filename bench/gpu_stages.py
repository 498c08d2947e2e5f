"""The GPU check's stages, each run by `bench.gpu_check` in a process of its own.

    python -m bench.gpu_stages spill OUT [--dry-run]
    python -m bench.gpu_stages screenshot OUT

`spill`: a QLoRA run with `paged_adamw_8bit` on a 1B-class model (random weights of
Llama-3.2-1B's shape), telemetry every 0.25 s. After a few steps a ballast allocation takes
the GPU's free memory and as much again as half the paged optimizer state, so that the driver
must move managed pages to the host; the run then goes on for some steps. It writes
`telemetry.jsonl` and `spill.json`: what the ballast took, the largest paged, resident and
spilled figures of the estimate, and the PCIe counters before and during the spill, so that
the estimate can be set against the bytes that crossed the bus. `--dry-run` runs the same on
the CPU with the tiny model and no ballast.

`screenshot`: the Train screen's memory panel replaying OUT/telemetry.jsonl, saved as
`memory-panel.svg`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BALLAST_AFTER_STEP = 4
SPILL_STEPS = 12  # steps in all; the ballast is taken after BALLAST_AFTER_STEP of them
SPILL_MODEL = "llama-3.2-1b"


def spill_config(model: str, runs_dir: Path, dry_run: bool) -> Any:
    from studio.config import config_from_dict

    return config_from_dict(
        {
            "model": {"source": model},
            "method": {
                "name": "qlora",
                "rank": 16 if dry_run else 256,  # rank 256: ~0.36 GiB of 8-bit paged state
                "alpha": 32,
                "dropout": 0.0,
                "target_modules": "all-linear",
            },
            # Packed rows of one length: after the first steps the allocator has every block
            # a step needs, so the ballast leaves room only by evicting paged state.
            "training_type": "pretrain",
            "data": {
                "path": str(REPO / "sample_data" / "pretrain_en.txt"),
                "max_length": 256,
                "eval_fraction": 0.0,
            },
            "training": {
                "packing": True,
                "max_steps": 2 if dry_run else SPILL_STEPS,
                "batch_size": 4,
                "optimizer": "paged_adamw_8bit",
                "logging_steps": 1,
                "save_steps": 10_000,
                "seed": 42,
            },
            "output": {"runs_dir": str(runs_dir)},
        }
    )


class Ballast:
    """Takes the GPU's free memory plus half the paged state once, after a few steps."""

    def __init__(self) -> None:
        self.report: dict[str, Any] = {"taken": False}
        self._tensor: Any = None

    def callback(self) -> Any:
        from transformers import TrainerCallback

        ballast = self

        class TakeMemory(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if state.global_step == BALLAST_AFTER_STEP and ballast._tensor is None:
                    ballast.take(state.global_step)

        return TakeMemory()

    def take(self, step: int) -> None:
        import torch

        from studio.telemetry.paged import read_paged_totals

        paged = sum(total.paged_bytes for total in read_paged_totals())
        free, total = torch.cuda.mem_get_info()
        self.report.update(step=step, paged_bytes=paged, free_before=free, total=total)
        # More than is free: only evicting managed (paged) pages to the host can make room.
        for size in (free + paged // 2, free - 256 * 1024**2):
            try:
                self._tensor = torch.empty(max(size, 0), dtype=torch.uint8, device="cuda")
            except torch.OutOfMemoryError as error:
                self.report.setdefault("refused", []).append({"bytes": size, "error": str(error)})
                continue
            self.report.update(taken=True, bytes=size, free_after=torch.cuda.mem_get_info()[0])
            return


def run_spill(out: Path, dry_run: bool) -> dict[str, Any]:
    from bench.arms import run_with_trainer_hook

    if dry_run:
        model = "tiny-demo"
    else:
        from bench.workload import model_folder

        model = str(model_folder(SPILL_MODEL))
    workdir = Path(tempfile.mkdtemp(prefix="ftstudio-spill-"))
    ballast = Ballast()

    def add_ballast(trainer: Any) -> None:
        if not dry_run:
            trainer.add_callback(ballast.callback())

    config = spill_config(model, workdir / "runs", dry_run)
    result, lines, errors = run_with_trainer_hook(
        config, add_ballast, base_dir=REPO, telemetry_interval=0.25
    )
    run_dir = Path(result.run_dir)
    telemetry = run_dir / "telemetry.jsonl"
    if telemetry.exists():
        shutil.copyfile(telemetry, out / "telemetry.jsonl")
    report = {
        "state": result.state.value,
        "errors": errors,
        "model": SPILL_MODEL if not dry_run else "tiny-demo",
        "ballast": ballast.report,
        "fast_path": [line for line in lines if line.startswith("fast path: ")],
        "released": [line for line in lines if line.startswith("paged optimizer state")],
        **summarise_telemetry(telemetry),
    }
    shutil.rmtree(workdir, ignore_errors=True)
    return report


def summarise_telemetry(path: Path) -> dict[str, Any]:
    """The paged figures and PCIe traffic before and while paged state was spilled."""
    from studio.telemetry.replay import read_telemetry_jsonl

    if not path.exists():
        return {"snapshots": 0}
    snapshots = read_telemetry_jsonl(path)
    spilling, calm = [], []
    largest: dict[str, int] = {"paged_bytes": 0, "resident_bytes": 0, "spilled_bytes": 0}
    for snapshot in snapshots:
        spilled = sum(item.spilled_bytes or 0 for item in snapshot.paged)
        for key in largest:
            value = sum(getattr(item, key) or 0 for item in snapshot.paged)
            largest[key] = max(largest[key], value)
        gpu = snapshot.gpus[0] if snapshot.gpus else None
        if gpu is None:
            continue
        pcie = (gpu.pcie_rx_bytes_per_second or 0) + (gpu.pcie_tx_bytes_per_second or 0)
        (spilling if spilled > 0 else calm).append(pcie)

    def mean(values: list[int]) -> float | None:
        return round(sum(values) / len(values)) if values else None

    return {
        "snapshots": len(snapshots),
        "largest": largest,
        "pcie_bytes_per_second_mean": {"not_spilling": mean(calm), "spilling": mean(spilling)},
        "snapshots_spilling": len(spilling),
        "gpu": snapshots[-1].gpus[0].name if snapshots and snapshots[-1].gpus else None,
    }


async def save_memory_panel(telemetry: Path, picture: Path, size: tuple[int, int] = (120, 36)):
    """The Train screen with the memory panel fed the run's telemetry, as an SVG."""
    from studio.engine.events import TelemetryEvent
    from studio.telemetry.replay import read_telemetry_jsonl
    from studio.ui.app import make_app
    from studio.ui.runs.monitor import RunMonitor
    from tests.support.ui import isolated_services, settle

    monitor = RunMonitor()
    for snapshot in read_telemetry_jsonl(telemetry) if telemetry.exists() else []:
        monitor.record(TelemetryEvent(snapshot=snapshot.to_dict()))
    scratch = Path(tempfile.mkdtemp(prefix="ftstudio-panel-"))
    app = make_app(isolated_services(scratch, theme="ftstudio-dark"))
    async with app.run_test(size=size) as pilot:
        await pilot.press("3")
        await settle(pilot)
        app.runs.monitor = monitor
        app.runs.changed.publish(monitor)
        await settle(pilot)
        app.save_screenshot(filename=picture.name, path=str(picture.parent))
    shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_stages")
    parser.add_argument("stage", choices=["spill", "screenshot"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model, no ballast")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage == "spill":
        report = run_spill(args.out, args.dry_run)
        (args.out / "spill.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(json.dumps(report, indent=2))
        return 0 if report["state"] == "finished" else 1
    asyncio.run(save_memory_panel(args.out / "telemetry.jsonl", args.out / "memory-panel.svg"))
    print(f"wrote {args.out / 'memory-panel.svg'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
