"""`python -m bench.data_prep`: how long a large dataset takes to become training examples.

One run generates an alpaca file (`--records`, default 100,000; never committed) and prepares
it for SFT on the built-in tiny model's tokenizer and chat template, max_length 256, with the
loss on the answers only, four ways, each in a process of its own (so peak RSS is per arm):

- `ftstudio-cold`: ftstudio's own preparation (read, check, clean, encode in batches over
  worker processes, write the encoded-data cache) into an empty cache;
- `ftstudio-warm`: the same again: the encoded copy from the cache;
- `trl`: trl's SFTTrainer dataset preparation (`_prepare_dataset`, what its constructor runs)
  on the file loaded with `datasets`, as prompt / completion conversations, completion-only
  loss, `dataset_num_proc` = cores;
- `datasets-map`: a plain `datasets.map(batched=True, num_proc=cores)` that renders the chat
  template and masks the prompt.

Each arm's time counts from after its imports and the tokenizer load (the same in every arm)
to prepared examples; the Hugging Face datasets cache of each arm is a fresh folder, so no arm
reuses another's (or an earlier run's) work. Memory is sampled every 100 ms over the arm's
process and all its worker processes together as PSS (`peak_pss_bytes`: shared pages counted
once), with the main process's own peak RSS (`peak_rss_main_bytes`) and the PSS before
preparing (`baseline_pss_bytes`: interpreter, libraries, tokenizer). The memory a preparation
costs is `preparation_pss_bytes` = peak - baseline (the "x file" column divides it by the
file's size): the baseline (~350 MB, torch and transformers) is the same whatever the data.
With `--repeat N` every arm runs N times, in N rounds that each start one arm later (on a
shared machine the arm that runs first tends to do better); the table gives each arm's median
seconds, its fastest and slowest, and the highest memory of its runs. Every cold run starts
from an empty ftstudio cache; a warm run reads the cache of the latest cold one.
The figures go to bench/results/data-prep-<records>.json and are printed as a table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.alpaca_file import write_alpaca_file
from bench.environment import load_average

RESULTS = Path(__file__).resolve().parent / "results"
ARMS = ("ftstudio-cold", "ftstudio-warm", "trl", "datasets-map")
MAX_LENGTH = 256


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ---------------------------------------------------------------- inside an arm's process


class PeakMemory:
    """Samples the memory of this process and its children (workers) until stopped.

    The sum over the processes is of PSS (proportional set size: a page shared by n processes
    counts 1/n in each), so forked workers that share their parent's pages are not counted
    twice; the main process's own peak RSS comes from the kernel's high-water mark."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.baseline = self._pss(self.process)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _pss(process: Any) -> int:
        # The kernel's own sum (smaps_rollup): ~0.1 ms, where psutil's full smaps walk costs
        # ~1.4 ms a process, 3 s of a core over a 35 s arm, taken from the arm it measures.
        try:
            with open(f"/proc/{process.pid}/smaps_rollup", "rb") as rollup:
                for line in rollup:
                    if line.startswith(b"Pss:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        info = process.memory_full_info()
        return int(getattr(info, "pss", info.rss))

    def _sample(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            with contextlib.suppress(psutil.Error):
                total = self._pss(self.process)
                for child in self.process.children(recursive=True):
                    with contextlib.suppress(psutil.Error):  # a worker that just ended
                        total += self._pss(child)
            self.peak = max(self.peak, total)
            self._stop.wait(0.1)

    def stop(self) -> dict[str, int]:
        import resource

        self._stop.set()
        self._thread.join()
        main_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return {
            "baseline_pss_bytes": self.baseline,
            "peak_pss_bytes": self.peak,
            # What preparing costs: the peak minus what the process held before it started
            # (interpreter, torch, transformers, the tokenizer: ~350 MB, more than 3x an 85 MB
            # file, and the same whatever the data). Worker processes count whole: their
            # interpreters and imports are part of the preparation's cost.
            "preparation_pss_bytes": self.peak - self.baseline,
            "peak_rss_main_bytes": main_peak,
        }


def _tokenizer() -> Any:
    from transformers import AutoTokenizer

    from studio.models.tiny import ensure_tiny_model

    return AutoTokenizer.from_pretrained(ensure_tiny_model())


def _ftstudio(path: Path) -> tuple[int, dict[str, Any]]:
    from types import SimpleNamespace

    from studio.config import config_from_dict
    from studio.engine.control import TrainingControl
    from studio.engine.data_preparation import encoded_for_training, load_run_data

    config = config_from_dict(
        {
            "model": {"source": "tiny-demo"},
            "training_type": "sft",
            "data": {"path": str(path), "max_length": MAX_LENGTH},
        }
    )
    logged: list[str] = []
    session = SimpleNamespace(
        config=config,
        base_dir=None,
        control=TrainingControl(),
        log=lambda text, level="info": logged.append(text),
        publish=lambda event: None,
        rank=None,
        encoding_while_reading=None,
    )
    import datasets  # imported before the clock starts, as in the other arms

    datasets.disable_progress_bars()
    tokenizer = _tokenizer()
    memory = PeakMemory()
    started = time.perf_counter()
    # With the tokenizer, as `ftstudio train` reads a run's data: encoding starts while reading.
    data = load_run_data(session, tokenizer)  # type: ignore[arg-type]
    loaded = time.perf_counter() - started
    after_reading = memory.process.memory_info().rss
    job = SimpleNamespace(
        config=config, session=session, data=data, tokenizer=tokenizer, early_preparation=None
    )
    encoded = encoded_for_training(job)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    figures = memory.stop()
    return len(encoded.train), {
        "seconds": seconds,
        **figures,
        "read_check_clean_seconds": loaded,  # the rest is encoding (or the cache)
        "rss_after_reading_bytes": after_reading,
        "from_cache": encoded.from_cache,
        "log": logged,
    }


def _alpaca_conversation(record: dict[str, str]) -> dict[str, Any]:
    """The user turn exactly as ftstudio's alpaca converter writes it."""
    extra = record.get("input") or ""
    prompt = f"{record['instruction']}\n\n{extra}" if extra.strip() else record["instruction"]
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "completion": [{"role": "assistant", "content": record["output"]}],
    }


def _trl(path: Path) -> tuple[int, dict[str, Any]]:
    import warnings

    import datasets
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from studio.models.tiny import ensure_tiny_model

    warnings.simplefilter("ignore")
    datasets.disable_progress_bars()
    tokenizer = _tokenizer()
    model = AutoModelForCausalLM.from_pretrained(ensure_tiny_model())
    args = SFTConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-trl-"),
        max_length=MAX_LENGTH,
        dataset_num_proc=_cores(),
        completion_only_loss=True,
        report_to=[],
        use_cpu=True,
    )
    seed = datasets.Dataset.from_list(
        [_alpaca_conversation({"instruction": "Hi", "input": "", "output": "Hello"})]
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=seed, processing_class=tokenizer)
    memory = PeakMemory()
    started = time.perf_counter()
    raw = datasets.load_dataset("json", data_files=str(path), split="train")
    conversations = raw.map(
        _alpaca_conversation, remove_columns=raw.column_names, num_proc=_cores()
    )
    prepared = trainer._prepare_dataset(conversations, tokenizer, args, False, None, "train")
    seconds = time.perf_counter() - started
    return len(prepared), {"seconds": seconds, **memory.stop()}


def _map_batch(batch: dict[str, list[str]], tokenizer: Any) -> dict[str, list[list[int]]]:
    input_ids, labels = [], []
    for instruction, extra, output in zip(
        batch["instruction"], batch["input"], batch["output"], strict=True
    ):
        turns = _alpaca_conversation({"instruction": instruction, "input": extra, "output": output})
        prompt = tokenizer.apply_chat_template(
            turns["prompt"], tokenize=False, add_generation_prompt=True
        )
        full = tokenizer.apply_chat_template(turns["prompt"] + turns["completion"], tokenize=False)
        ids = tokenizer(full, add_special_tokens=False)["input_ids"][:MAX_LENGTH]
        prompt_length = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        input_ids.append(ids)
        labels.append([-100] * min(prompt_length, len(ids)) + ids[prompt_length:])
    return {"input_ids": input_ids, "labels": labels}


def _datasets_map(path: Path) -> tuple[int, dict[str, Any]]:
    import datasets

    datasets.disable_progress_bars()
    tokenizer = _tokenizer()
    memory = PeakMemory()
    started = time.perf_counter()
    raw = datasets.load_dataset("json", data_files=str(path), split="train")
    prepared = raw.map(
        _map_batch,
        batched=True,
        num_proc=_cores(),
        remove_columns=raw.column_names,
        fn_kwargs={"tokenizer": tokenizer},
    )
    seconds = time.perf_counter() - started
    return len(prepared), {"seconds": seconds, **memory.stop()}


def run_arm(arm: str, path: Path) -> dict[str, Any]:
    if arm.startswith("ftstudio"):
        examples, figures = _ftstudio(path)
    elif arm == "trl":
        examples, figures = _trl(path)
    else:
        examples, figures = _datasets_map(path)
    return {"arm": arm, "examples": examples, **figures}


# ---------------------------------------------------------------- the driver


def _run_in_process(arm: str, path: Path, cache: Path, hf_cache: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "FTSTUDIO_CACHE_DIR": str(cache),
        "HF_DATASETS_CACHE": str(hf_cache / arm),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }
    command = [sys.executable, "-m", "bench.data_prep", "--arm", arm, "--file", str(path)]
    # The arms run one after another on a shared machine: each one's load says how fair the
    # comparison was.
    load = load_average()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"arm {arm} failed:\n{done.stderr[-4000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return {**row, "load_average_before": load, "load_average_after": load_average()}


def _load(row: dict[str, Any], when: str) -> str:
    """The 1-minute load average before or after an arm ("-" if not known)."""
    load = row.get(f"load_average_{when}")
    return f"{load[0]:.1f}" if load else "-"


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per arm, in the order the arms first ran: the median of its seconds (with the
    fastest and slowest), and the run of its highest preparation memory."""
    import statistics

    arms: dict[str, list[dict[str, Any]]] = {}
    for row in runs:
        arms.setdefault(row["arm"], []).append(row)
    summary = []
    for rows in arms.values():
        seconds = [row["seconds"] for row in rows]
        heaviest = max(rows, key=lambda row: row["peak_pss_bytes"] - row["baseline_pss_bytes"])
        summary.append(
            {
                **{k: v for k, v in heaviest.items() if k != "log"},
                "seconds": statistics.median(seconds),
                "seconds_each": seconds,
                "runs": len(rows),
            }
        )
    return summary


def table(summary: list[dict[str, Any]], records: int, file_bytes: int) -> str:
    mib = 1024**2
    lines = [
        f"{records:,} alpaca records, {file_bytes / mib:.1f} MiB file",
        "| arm | seconds (median) | fastest / slowest | runs | records/s | "
        "peak PSS, all processes (MiB) | peak PSS over the baseline (MiB) | x file | "
        "main process peak RSS (MiB) | PSS before preparing (MiB) | load before / after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in summary:
        over = row["peak_pss_bytes"] - row["baseline_pss_bytes"]
        each = row["seconds_each"]
        lines.append(
            f"| {row['arm']} | {row['seconds']:.2f} | {min(each):.2f} / {max(each):.2f} | "
            f"{len(each)} | {records / row['seconds']:,.0f} | "
            f"{row['peak_pss_bytes'] / mib:,.0f} | {over / mib:,.0f} | {over / file_bytes:.1f} | "
            f"{row['peak_rss_main_bytes'] / mib:,.0f} | {row['baseline_pss_bytes'] / mib:,.0f} | "
            f"{_load(row, 'before')} / {_load(row, 'after')} |"
        )
    return "\n".join(lines)


def rounds(arms: list[str], repeat: int) -> list[list[str]]:
    """The arms' order in each round: each round starts one arm later than the one before."""
    return [arms[turn % len(arms) :] + arms[: turn % len(arms)] for turn in range(repeat)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.data_prep", description=__doc__)
    parser.add_argument("--records", type=int, default=100_000, help="alpaca records to generate")
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset of arms")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds: every arm runs this many times"
    )
    parser.add_argument("--output", type=Path, help="result file (default: bench/results/...)")
    parser.add_argument("--arm", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    repeat = max(args.repeat, 1)
    if args.arm:
        print(json.dumps(run_arm(args.arm, args.file)))
        return 0
    arms = [arm.strip() for arm in args.arms.split(",") if arm.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-data-prep-") as scratch:
        folder = Path(scratch)
        path = write_alpaca_file(folder / f"alpaca-{args.records}.jsonl", args.records)
        from studio.models.tiny import ensure_tiny_model

        ensure_tiny_model()  # built before the arms, in the user's cache, not timed
        from studio.models.tiny import tiny_model_dir

        model = tiny_model_dir()
        load = load_average()

        def fresh_cache(name: str) -> Path:
            """An empty ftstudio cache sharing the built tiny model (a link) with the user's."""
            cache = folder / name
            (cache / "models").mkdir(parents=True)
            (cache / "models" / model.name).symlink_to(model)
            return cache

        results: list[dict[str, Any]] = []
        others = cold = fresh_cache("ftstudio-cache")
        for turn, order in enumerate(rounds(arms, repeat)):
            for arm in order:
                if arm == "ftstudio-cold":
                    cold = fresh_cache(f"ftstudio-cache-{len(results)}")
                # A warm run reads the latest cold run's cache.
                cache = cold if arm.startswith("ftstudio") else others
                hf_cache = folder / f"hf-datasets-{len(results)}"
                row = _run_in_process(arm, path, cache, hf_cache)
                results.append({**row, "round": turn})
                shutil.rmtree(hf_cache, ignore_errors=True)
        file_bytes = path.stat().st_size
    summary = summarize(results)
    text = table(summary, args.records, file_bytes)
    print(text)
    record = {
        "command": "python -m bench.data_prep " + " ".join(argv or sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "records": args.records,
        "file_bytes": file_bytes,
        "cores": _cores(),
        "load_average_before": load,
        "load_average_after": load_average(),
        "repeat": repeat,
        "results": summary,  # without the logs: `summarize` leaves them out
        "runs": [{k: v for k, v in row.items() if k != "log"} for row in results],
        "ftstudio_log": next((row.get("log") for row in results if row.get("log")), None),
        "table": text,
    }
    output = args.output or RESULTS / f"data-prep-{args.records}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
