"""Replay: mix a share of a second, general dataset into training against forgetting.

`data.replay_fraction` is the share of the final training set that comes from
`data.replay_path`: with 80 domain records and a fraction of 0.2, 20 replay records are mixed
in (20 of 100). Records are drawn without repetition by a seeded shuffle; when the replay file
has too few, all of them are used and the share actually reached is reported. Only the
training split gets replay records; the eval split stays the user's own data.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from studio.data.loading import LoadedData, no_usable_records, prepare_file
from studio.data.training_fit import fit_training_type
from studio.errors import DataError

if TYPE_CHECKING:
    from studio.config import DataSettings


def replay_count(train_records: int, fraction: float) -> int:
    """How many replay records make them `fraction` of the mixed training set."""
    if train_records <= 0 or fraction <= 0:
        return 0
    return max(1, round(train_records * fraction / (1.0 - fraction)))


def mix_replay(
    data: LoadedData,
    settings: DataSettings,
    training_type: str,
    seed: int = 42,
    base_dir: Path | None = None,
) -> LoadedData:
    """`data` with replay records mixed into its training split (unchanged without replay)."""
    if not settings.replay_path:
        return data
    records, report = prepare_file(
        settings.replay_path,
        data_format="auto",
        min_chars=settings.min_chars,
        deduplicate=settings.deduplicate,
        system_prompt=settings.system_prompt,
        split=settings.split,
        base_dir=base_dir,
    )
    try:
        kind, records = fit_training_type(records, report, training_type)
    except DataError as error:
        raise DataError(
            f"the replay dataset does not suit {training_type}: {error.message}",
            location=settings.replay_path,
            advice=error.advice,
        ) from None
    if not records:
        raise no_usable_records(report)
    if kind != data.kind:
        raise DataError(
            f"the replay dataset holds {kind} data but the training data is {data.kind}",
            location=settings.replay_path,
            advice="give data.replay_path a file of the same kind as data.path",
        )
    rng = random.Random(seed)
    wanted = replay_count(len(data.train), settings.replay_fraction)
    pool = [item.record for item in records]
    rng.shuffle(pool)
    chosen = pool[:wanted]
    mixed = [*data.train, *chosen]
    rng.shuffle(mixed)
    share = len(chosen) / len(mixed)
    note = (
        f"replay: mixed {len(chosen)} records from {settings.replay_path} into "
        f"{len(data.train)} training records ({share:.0%} of training, "
        f"replay_fraction {settings.replay_fraction})"
    )
    if len(chosen) < wanted:
        note += f"; wanted {wanted} but the replay file has only {len(pool)} usable records"
    report_notes = [*data.report.notes, note]
    return replace(data, train=mixed, report=replace(data.report, notes=report_notes))
