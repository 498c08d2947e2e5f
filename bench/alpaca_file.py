"""A large alpaca file for the data-preparation benchmark, generated, never committed.

Records look like LLaMA-Factory's English alpaca demo: an instruction, sometimes an input, and
an answer of a few sentences; every record differs (so deduplication keeps them all), and the
mean record is about 850 bytes of JSON, as in the issue's 85 MB, 100k-record file.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

_VERBS = ["Explain", "Describe", "Summarize", "List", "Compare", "Give", "Write", "Suggest"]
_TOPICS = [
    "photosynthesis",
    "the water cycle",
    "compound interest",
    "a healthy breakfast",
    "machine learning",
    "the French revolution",
    "volcanoes",
    "public speaking",
    "time management",
    "the immune system",
    "renewable energy",
    "black holes",
    "the stock market",
    "climate change",
    "a good night's sleep",
    "learning a language",
]
_WORDS = (  # noqa: SIM905 (a word list reads better as one string)
    "the of and to in is that it for as with was on be by this are from at or an which "
    "can have more one all their there been has when who will would what so if about "
    "energy system people water time process light example important often result "
    "different because between through during before under around without within"
).split()


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 18))]
    return " ".join(words).capitalize() + "."


def alpaca_record(rng: random.Random, index: int) -> dict[str, str]:
    topic = rng.choice(_TOPICS)
    instruction = f"{rng.choice(_VERBS)} {topic} (case {index})."
    given = " ".join(_sentence(rng) for _ in range(rng.randint(1, 3))) if rng.random() < 0.4 else ""
    output = " ".join(_sentence(rng) for _ in range(rng.randint(6, 12)))
    return {"instruction": instruction, "input": given, "output": output}


def write_alpaca_file(path: Path, records: int, seed: int = 0) -> Path:
    """Write `records` alpaca records as JSON Lines to `path` (reused when it exists)."""
    if path.exists():
        return path
    rng = random.Random(seed)
    staging = path.with_suffix(".partial")
    with staging.open("w", encoding="utf-8") as sink:
        for index in range(records):
            sink.write(json.dumps(alpaca_record(rng, index), ensure_ascii=False) + "\n")
    staging.replace(path)
    return path
