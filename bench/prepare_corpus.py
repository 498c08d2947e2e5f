"""Measure `ftstudio data prepare` on a generated folder of mixed documents, then continued
pre-training on its output.

    python -m bench.prepare_corpus --size-mb 50 --work /tmp/prepare-bench [--train-steps 4]

The folder holds one large book (40% of the size, paragraphs between blank lines), many
small text files (some cp1252, some with near-duplicate and exact copies), web pages of one
site with menus and cookie banners, Word files and PDF reports (reportlab and python-docx,
the test dependencies, write them). Each stage runs in a child process; its wall time and
peak RSS (getrusage of the child) are printed as one JSON line per stage.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def build_folder(folder: Path, size_mb: float) -> int:
    """Write the documents; returns their total size in bytes."""
    sys.path.insert(0, str(REPO))
    from tests.support.sample_documents import (
        REPORT_PAGES,
        REPORT_TABLE,
        prose,
        site_page,
        write_report_pdf,
        write_word,
    )

    folder.mkdir(parents=True, exist_ok=True)
    target = int(size_mb * 1_000_000)
    with (folder / "book.txt").open("w", encoding="utf-8") as book:
        written, seed = 0, 0
        while written < 0.4 * target:
            paragraph = prose(seed, 150) + "\n\n"
            book.write(paragraph)
            written += len(paragraph)
            seed += 1
    (folder / "site").mkdir(exist_ok=True)
    for page in range(int(0.15 * target / 8000)):
        paragraphs = [prose(10_000_000 + page * 10 + part, 120) for part in range(5)]
        (folder / "site" / f"page{page:05d}.html").write_text(
            site_page(f"Harbour story {page}", paragraphs), encoding="utf-8"
        )
    (folder / "reports").mkdir(exist_ok=True)
    for report in range(40):
        write_report_pdf(folder / "reports" / f"report{report:03d}.pdf", REPORT_PAGES,
                         table=REPORT_TABLE)  # fmt: skip
    (folder / "letters").mkdir(exist_ok=True)
    for letter in range(60):
        write_word(folder / "letters" / f"letter{letter:03d}.docx", f"Letter {letter}",
                   [prose(20_000_000 + letter * 5 + part, 80) for part in range(4)],
                   ("the council site", "https://example.org"))  # fmt: skip
    notes = folder / "notes"
    notes.mkdir(exist_ok=True)
    index = 0
    size = _size(folder)
    while size < target:
        text = "\n\n".join(prose(30_000_000 + index * 10 + part, 200) for part in range(8))
        name = notes / f"note{index:05d}.txt"
        if index % 10 == 3:
            name.write_bytes((text + " Café crème, naïve.").encode("cp1252"))
        else:
            name.write_text(text, encoding="utf-8")
        size += name.stat().st_size
        if index % 20 == 5:  # a near-duplicate copy: two words changed, a line appended
            copy = text.replace(" the ", " a ", 2) + "\n\nCopied for the archive."
            size += (notes / f"note{index:05d}_copy.txt").write_text(copy, encoding="utf-8")
        index += 1
    return _size(folder)


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def run_stage(name: str, command: list[str]) -> dict[str, object]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, cpu_before = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kib = usage.ru_maxrss
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:], file=sys.stderr)
    stage = {
        "stage": name,
        "seconds": round(seconds, 1),
        # CPU time of the child: what the stage costs on a machine shared with other work.
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime - cpu_before, 1),
        # ru_maxrss of children is the largest child so far; stages run from small to large.
        "peak_rss_mib": round(max(peak_kib, before) / 1024, 1),
        "returncode": result.returncode,
    }
    return stage | {"output_tail": result.stdout.strip().splitlines()[:6]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=50)
    parser.add_argument("--work", type=Path, default=Path("/tmp/prepare-bench"))
    parser.add_argument("--train-steps", type=int, default=0, help="0: skip training")
    args = parser.parse_args()
    docs, corpus = args.work / "docs", args.work / "corpus.jsonl"
    if not docs.exists():
        size = build_folder(docs, args.size_mb)
        print(json.dumps({"stage": "generate", "bytes": size}), flush=True)
    prepare = run_stage(
        "prepare",
        [sys.executable, "-m", "studio", "data", "prepare", str(docs), "-o", str(corpus),
         "--report", str(args.work / "report.json")],
    )  # fmt: skip
    mb = _size(docs) / 1e6
    prepare["megabytes_per_second"] = round(mb / max(float(prepare["seconds"]), 1e-9), 2)
    prepare["megabytes_per_cpu_second"] = round(mb / max(float(prepare["cpu_seconds"]), 1e-9), 2)
    print(json.dumps(prepare), flush=True)
    if args.train_steps:
        train = run_stage(
            "pretrain",
            [sys.executable, "-m", "studio", "train", "sample_data/configs/pretrain.yaml",
             "--quiet", "--set", f"data.path={corpus}", "--set", "data.eval_fraction=0",
             "--set", f"training.max_steps={args.train_steps}",
             "--set", f"output.runs_dir={args.work / 'runs'}"],
        )  # fmt: skip
        print(json.dumps(train), flush=True)


if __name__ == "__main__":
    main()
