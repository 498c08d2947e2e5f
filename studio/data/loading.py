"""Load training data for a run: read, validate, clean, fit to the training type, split."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.data.cleaning import LineRecord, clean_records
from studio.data.control_tokens import control_token_note
from studio.data.folders import read_dataset_folder, read_hub_dataset
from studio.data.readers import HUB_NAME, SUPPORTED_SUFFIXES, RawFile, read_dataset_file
from studio.data.report import DataReport
from studio.data.spool import LineRecords, RecordSpool
from studio.data.spooled_prepare import SpoolListener, prepare_spooled
from studio.data.training_fit import fit_training_type
from studio.data.validation import detect_file_format, validate_records
from studio.errors import DataError
from studio.formatting import MIB

if TYPE_CHECKING:
    from studio.config import DataSettings

__all__ = ["LoadedData", "load_training_data", "prepare_file", "read_dataset_file"]

_STOP_LISTED = 20
# JSON Lines files from this size are read in parts and their records kept on disk
# (studio.data.spool): below it, holding them in memory is cheaper than a file.
SPOOL_FROM_BYTES = 16 * MIB


@dataclass
class LoadedData:
    """Canonical records ready for a trainer, and the report on how they were obtained."""

    kind: str  # conversation | preference | text
    # Lists, or for a large JSON Lines file records read from disk on demand (a spool's).
    train: Sequence[dict[str, Any]]
    eval: Sequence[dict[str, Any]]
    report: DataReport  # for the training file
    eval_report: DataReport | None = None  # for data.eval_path, when one is given
    # Set when an encoded copy of this data may be cached (studio.engine.encoded_cache).
    data_key: str | None = None
    # True when train / eval were left unread because the encoded copy is in the cache.
    deferred: bool = False


def prepare_file(
    path: str,
    *,
    data_format: str = "auto",
    min_chars: int = 1,
    deduplicate: bool = True,
    system_prompt: str | None = None,
    split: str = "train",
    base_dir: Path | None = None,
    streaming: bool = False,
    max_records: int | None = None,
    on_spooled: SpoolListener | None = None,
) -> tuple[LineRecords, DataReport]:
    """Read one dataset (a file, a dataset folder or a hub dataset) into cleaned canonical
    records and a report; a large JSON Lines file's records are kept on disk (a spool).
    Raises DataError only when the dataset as a whole cannot be read; bad records are in the
    report."""
    local = _local_path(path, base_dir)
    if max_records is None and _worth_spooling(local):
        return prepare_spooled(
            local,
            path,
            data_format=data_format,
            min_chars=min_chars,
            deduplicate=deduplicate,
            system_prompt=system_prompt,
            on_spooled=on_spooled,
        )
    raws = read_raw_files(path, split, base_dir, streaming, max_records)
    report = DataReport(path=path)
    data_format = detect_file_format(_all_records(raws), data_format)
    converted: list[LineRecord] = []
    for raw in raws:
        converted += validate_records(raw, data_format, system_prompt, report)
    kept = clean_records(converted, report, min_chars=min_chars, deduplicate=deduplicate)
    report.kept = len(kept)
    control_tokens = control_token_note(raws[0].path if len(raws) == 1 else path, kept)
    if control_tokens is not None:
        report.notes.append(control_tokens)
    return kept, report


def _local_path(path: str, base_dir: Path | None) -> Path:
    local = Path(path).expanduser()
    if not local.is_absolute() and base_dir is not None:
        local = base_dir / local
    return local


def _worth_spooling(local: Path) -> bool:
    """A JSON Lines file large enough that its records are kept on disk, not in memory."""
    if SUPPORTED_SUFFIXES.get(local.suffix.lower()) != "jsonl":
        return False
    try:
        return local.is_file() and local.stat().st_size >= SPOOL_FROM_BYTES
    except OSError:
        return False  # the reader says what is wrong with it


def read_raw_files(
    path: str,
    split: str = "train",
    base_dir: Path | None = None,
    streaming: bool = False,
    max_records: int | None = None,
) -> list[RawFile]:
    """The raw records of a file, a dataset folder or a hub dataset."""
    local = _local_path(path, base_dir)
    if local.is_dir():
        return read_dataset_folder(local, path, split, max_records)
    hub_like = local.suffix.lower() not in SUPPORTED_SUFFIXES and HUB_NAME.match(path)
    if hub_like and not local.exists():
        return [read_hub_dataset(path, split, streaming, max_records)]
    raw = read_dataset_file(path, split=split, base_dir=base_dir)
    if max_records is not None:
        raw.records = raw.records[:max_records]
    return [raw]


def _all_records(raws: list[RawFile]) -> RawFile:
    """One RawFile holding every record, for deciding the format of the whole dataset."""
    if len(raws) == 1:
        return raws[0]
    merged = RawFile(raws[0].path, raws[0].file_type)
    for raw in raws:
        merged.records += raw.records
    return merged


def load_training_data(
    settings: DataSettings,
    training_type: str,
    seed: int = 42,
    base_dir: Path | None = None,
    on_spooled: SpoolListener | None = None,
) -> LoadedData:
    """Everything the trainer needs from `settings`; DataError with advice when unusable.
    `on_spooled` is told of data.path's records as they are read, when they are spooled."""
    kind, records, report = _load_one(
        settings, settings.path, training_type, base_dir, on_spooled=on_spooled
    )
    if settings.mix:
        kind, records = _load_mix(settings, training_type, seed, base_dir, kind, records, report)
    eval_records: LineRecords = []
    eval_report: DataReport | None = None
    if settings.eval_path:
        eval_kind, eval_records, eval_report = _load_one(
            settings, settings.eval_path, training_type, base_dir
        )
        if eval_kind != kind:  # only possible if the two files differ in kind
            raise DataError(
                f"the eval file holds {eval_kind} data but the training file {kind} data",
                location=settings.eval_path,
                advice="give an eval file in the same format as the training file",
            )
        if settings.eval_fraction > 0:
            report.notes.append("eval_path is set, so eval_fraction is not used")
    elif settings.eval_fraction > 0:
        records, eval_records = split_for_eval(records, settings.eval_fraction, seed)
        if eval_records:
            report.notes.append(
                f"held out {len(eval_records)} of {len(records) + len(eval_records)} records "
                "for eval "
                f"(eval_fraction {settings.eval_fraction}, seed {seed})"
            )
        else:
            report.notes.append("too few records to hold any out for eval; no eval split")
    return LoadedData(
        kind=kind,
        train=_plain_records(records),
        eval=_plain_records(eval_records),
        report=report,
        eval_report=eval_report,
    )


def _plain_records(records: LineRecords) -> Sequence[dict[str, Any]]:
    if isinstance(records, RecordSpool):
        return records.records
    return [item.record for item in records]


def split_for_eval(
    records: LineRecords, fraction: float, seed: int
) -> tuple[LineRecords, LineRecords]:
    """(train, eval): a seeded shuffle picks the eval records; both keep file order."""
    if fraction <= 0 or len(records) < 2:
        return records, []
    count = min(max(1, round(len(records) * fraction)), len(records) - 1)
    indices = list(range(len(records)))
    random.Random(seed).shuffle(indices)
    held_out = set(indices[:count])
    if isinstance(records, RecordSpool):
        kept = (i for i in range(len(records)) if i not in held_out)
        return records.select(kept), records.select(sorted(held_out))
    train = [r for i, r in enumerate(records) if i not in held_out]
    evaluation = [r for i, r in enumerate(records) if i in held_out]
    return train, evaluation


def _load_mix(
    settings: DataSettings,
    training_type: str,
    seed: int,
    base_dir: Path | None,
    kind: str,
    records: LineRecords,
    report: DataReport,
) -> tuple[str, list[LineRecord]]:
    """data.path and every data.mix dataset, mixed by weight; the shares go in `report`.
    The mix is made in memory (a spooled dataset's records are read back)."""
    from studio.data.mixing import MixSource, mix_lines, mix_sources

    sources = [MixSource(settings.path, settings.weight, list(records), report)]
    for entry in settings.mix:
        other_kind, other_records, other_report = _load_one(
            settings, entry.path, training_type, base_dir, entry.format, entry.split
        )
        if other_kind != kind:
            raise DataError(
                f"data.mix dataset {entry.path} holds {other_kind} data but data.path holds "
                f"{kind} data",
                location=entry.path,
                advice="mix datasets of one kind (conversations, preference pairs, labelled "
                "answers or raw text)",
            )
        sources.append(MixSource(entry.path, entry.weight, list(other_records), other_report))
        report.notes += [f"{entry.path}: {note}" for note in other_report.notes]
    mixed, rows = mix_sources(sources, seed)
    report.mix = rows
    report.notes += mix_lines(rows)
    return kind, mixed


def _load_one(
    settings: DataSettings,
    path: str,
    training_type: str,
    base_dir: Path | None,
    data_format: str | None = None,
    split: str | None = None,
    on_spooled: SpoolListener | None = None,
) -> tuple[str, LineRecords, DataReport]:
    records, report = prepare_file(
        path,
        data_format=data_format or settings.format,
        min_chars=settings.min_chars,
        deduplicate=settings.deduplicate,
        system_prompt=settings.system_prompt,
        split=split or settings.split,
        base_dir=base_dir,
        streaming=settings.streaming,
        max_records=settings.max_records,
        on_spooled=on_spooled,
    )
    kind, records = fit_training_type(records, report, training_type)
    if report.problems and settings.on_bad_record == "stop":
        raise DataError(
            f"{len(report.problems)} malformed record(s) in {report.path}:\n  "
            + "\n  ".join(str(p) for p in report.problems[:_STOP_LISTED])
            + (
                f"\n  ... and {len(report.problems) - _STOP_LISTED} more"
                if len(report.problems) > _STOP_LISTED
                else ""
            ),
            location=report.path,
            advice="fix these records (run `ftstudio data check FILE` for the full list), or "
            "set data.on_bad_record: skip to drop them",
        )
    if not records:
        raise no_usable_records(report)
    return kind, records, report


def no_usable_records(report: DataReport) -> DataError:
    listed = report.problem_lines(limit=5)
    return DataError(
        f"no usable records in {report.path}: {report.counts_line()}"
        + ("\n  " + "\n  ".join(listed) if listed else ""),
        advice="run `ftstudio data check FILE` to see every dropped record and why",
    )
