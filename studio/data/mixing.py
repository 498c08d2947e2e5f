"""Several datasets in one run, each with its own format and weight.

Each dataset's share of the training set is its weight over the sum of the weights. Records
are drawn without repetition: the dataset that runs out first (for its weight) is used whole
and the others are sampled down to keep the shares, by a seeded shuffle, the way
LLaMA-Factory's `interleave_under` mixes. What each dataset gave is in the report.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from studio.data.cleaning import LineRecord
from studio.data.report import DataReport


@dataclass
class MixSource:
    """One dataset of the mix, loaded and fitted to the training type."""

    path: str
    weight: float
    records: list[LineRecord]
    report: DataReport


def mix_counts(available: list[int], weights: list[float]) -> list[int]:
    """How many records to take from each dataset so the shares follow the weights."""
    total_weight = sum(weights)
    shares = [weight / total_weight for weight in weights]
    size = min(count / share for count, share in zip(available, shares, strict=True))
    return [
        min(count, max(1, round(size * share)))
        for count, share in zip(available, shares, strict=True)
    ]


def mix_sources(sources: list[MixSource], seed: int) -> tuple[list[LineRecord], list[dict]]:
    """(mixed records in a seeded order, one row per dataset for the report)."""
    rng = random.Random(seed)
    counts = mix_counts([len(s.records) for s in sources], [s.weight for s in sources])
    mixed: list[LineRecord] = []
    for source, count in zip(sources, counts, strict=True):
        pool = list(source.records)
        rng.shuffle(pool)
        mixed += pool[:count]
    rng.shuffle(mixed)
    total_weight = sum(s.weight for s in sources)
    rows: list[dict[str, Any]] = []
    for source, count in zip(sources, counts, strict=True):
        rows.append(
            {
                "path": source.path,
                "format": source.report.format,
                "weight": source.weight,
                "target_share": round(source.weight / total_weight, 4),
                "available": len(source.records),
                "used": count,
                "share": round(count / len(mixed), 4),
                "read": source.report.read,
                "dropped": source.report.dropped_total,
            }
        )
    return mixed, rows


def mix_lines(rows: list[dict]) -> list[str]:
    """The report's lines for the mix: each dataset's records and share."""
    return [
        f"mix: {row['path']} ({row['format']}, weight {row['weight']:g}): {row['used']} of "
        f"{row['available']} usable records, {row['share']:.0%} of training"
        for row in rows
    ]
