"""One arm of one benchmark in a process of its own, so that no arm inherits another's
monkey-patches (Liger patches modules globally), GPU memory or compiled graphs.

    python -m bench.worker SPEC.json RESULT.json
    python -m bench.worker --prepare MODEL [CACHE_DIR]   (build the random-weight model folder)
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before torch is imported: time to first step includes it

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


def run_arm(spec: dict[str, Any]) -> dict[str, Any]:
    from bench import arms
    from bench.timing import StepTimer
    from bench.workload import Workload
    from studio.engine.encoding import encode_text

    workload = Workload.from_dict(spec["workload"])
    model_dir, data_path = Path(spec["model_dir"]), Path(spec["data_path"])
    workdir = Path(spec["workdir"])
    timer = StepTimer(STARTED)
    arm = spec["arm"]
    if arm == "ftstudio":
        extra = arms.run_ftstudio(workload, model_dir, data_path, workdir, timer)
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        texts = [json.loads(line)["text"] for line in data_path.read_text("utf-8").splitlines()]
        ids = [encode_text(tokenizer, text, workload.seq)[0] for text in texts]
        runner = arms.run_transformers if arm == "transformers" else arms.run_trl
        extra = runner(workload, model_dir, ids, workdir, timer)
    result = {"arm": arm, "ok": True, **timer.summary(workload.warmup), **extra}
    result["settings"]["gradient_checkpointing"] = timer.checkpointing
    return result


def memory() -> dict[str, Any]:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    values: dict[str, Any] = {"peak_rss_bytes": rss}
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            values["peak_vram_allocated_bytes"] = torch.cuda.max_memory_allocated()
            values["peak_vram_reserved_bytes"] = torch.cuda.max_memory_reserved()
    return values


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--prepare":
        from bench.workload import model_folder

        folder = model_folder(argv[1], Path(argv[2]) if len(argv) > 2 else None)
        print(folder)
        return 0
    spec = json.loads(Path(argv[0]).read_text("utf-8"))
    try:
        result = run_arm(spec)
    except Exception as error:  # reported in the result, e.g. out of memory
        kind = "out_of_memory" if "out of memory" in str(error).lower() else type(error).__name__
        result = {
            "arm": spec["arm"],
            "ok": False,
            "error": f"{kind}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}",
            "traceback": traceback.format_exc(limit=8),
        }
    result.update(memory())
    Path(argv[1]).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
