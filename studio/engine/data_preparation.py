"""A run's data from file to encoded examples, through the encoded-dataset cache.

Step 1 of a run (`load_run_data`) reads, checks, cleans and mixes the records, unless an
encoded copy of the same files with the same settings is cached: then only the cached report
is taken, and the records are read later only if the tokenizer turns out to differ from the
cached copy's. The SFT / pre-training trainer then takes its examples from
`encoded_for_training`: from the cache, or encoded now in batches over worker processes into
a new cache entry, with progress (and an ETA) published as `PreparationProgress` events and
the user's stop checked between batches.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.data.spool import SpooledRecords
from studio.engine import encoded_cache
from studio.engine.encoding import EncodingStats, require_chat_template
from studio.engine.events import PreparationProgress
from studio.engine.parallel_encoding import (
    PARALLEL_THRESHOLD,
    PackedRecords,
    Records,
    WorkerEncoding,
    choose_workers,
    encode_to_arrow,
)

if TYPE_CHECKING:
    from studio.data import LoadedData
    from studio.data.spooled_prepare import SpoolListener
    from studio.engine.session import TrainingSession
    from studio.engine.training import TrainingJob

CACHED_TRAINING_TYPES = ("sft", "pretrain")
PROGRESS_INTERVAL = 0.5  # seconds between progress events
# Records from which they are packed while being encoded (below, packing is not worth it).
PACK_THRESHOLD = PARALLEL_THRESHOLD


def load_records(session: TrainingSession, on_spooled: SpoolListener | None = None) -> LoadedData:
    """The run's records: read, checked, cleaned, mixed with data.mix and data.replay_path."""
    from studio.data import load_training_data
    from studio.data.replay import mix_replay

    config = session.config
    data = load_training_data(
        config.data,
        config.training_type,
        seed=config.training.seed,
        base_dir=session.base_dir,
        on_spooled=on_spooled,
    )
    return mix_replay(
        data, config.data, config.training_type, config.training.seed, session.base_dir
    )


def load_run_data(session: TrainingSession, tokenizer: Any = None) -> LoadedData:
    """Step 1 of a run: its records, or only their report when an encoded copy is cached.
    With the `tokenizer`, a large file's records start being encoded while it is read
    (studio.engine.encoding_while_reading; `prepare_encoded` goes on with that encoding)."""
    from studio.data import LoadedData
    from studio.data.report import DataReport

    config = session.config
    key = None
    if config.training_type in CACHED_TRAINING_TYPES:
        key = encoded_cache.data_key(config, session.base_dir)
    if key is not None:
        entry = encoded_cache.entry_for_data(key)
        if entry is not None:
            meta = entry.meta
            eval_report = meta.get("eval_report")
            return LoadedData(
                kind=meta["kind"],
                train=[],
                eval=[],
                report=DataReport.from_dict(meta["report"]),
                eval_report=DataReport.from_dict(eval_report) if eval_report else None,
                data_key=key,
                deferred=True,
            )
    started = None
    if key is not None and tokenizer is not None and session.rank is None:
        from studio.engine.encoding_while_reading import encoding_while_reading

        entry_key = encoded_cache.entry_key(
            key, encoded_cache.tokenizer_key(tokenizer), config.training.assistant_only_loss
        )
        started = encoding_while_reading(session, tokenizer, entry_key)
    try:
        data = load_records(session, on_spooled=started)
    except BaseException:
        if started is not None:
            started.abandon()
        raise
    if started is not None:
        abandon_encoding_while_reading(session)  # one left from an earlier read, if any
        session.encoding_while_reading = started
    data.data_key = key
    return data


def abandon_encoding_while_reading(session: TrainingSession) -> None:
    """End an encoding that began while the data was read and was not taken over (the run
    failed or stopped before), removing what it wrote."""
    started = getattr(session, "encoding_while_reading", None)
    if started is not None:
        session.encoding_while_reading = None
        started.abandon()


@dataclass
class EncodedData:
    """The encoded examples a trainer takes: datasets.Dataset objects backed by Arrow files."""

    train: Any
    eval: Any | None
    train_stats: EncodingStats
    eval_stats: EncodingStats | None
    from_cache: bool
    # Holds the folder of an encoding that is not cached (a hub dataset) for the run's life.
    keep_alive: Any = None


def _stats(data: dict[str, Any] | None) -> EncodingStats | None:
    return EncodingStats(**data) if data is not None else None


def encoded_for_training(job: TrainingJob) -> EncodedData:
    """The run's examples from the cache, or encoded now (and cached when the data can be);
    from the preparation that started while the model loaded, when one did."""
    if job.early_preparation is not None:
        return job.early_preparation.result()
    session = job.session
    return prepare_encoded(session, job.data, job.tokenizer, lambda: session.control.stop_requested)


def prepare_encoded(
    session: TrainingSession,
    data: LoadedData,
    tokenizer: Any,
    should_stop: Callable[[], bool],
) -> EncodedData:
    """`encoded_for_training` for `data` and `tokenizer`; PreparationStopped when
    `should_stop` says so between batches (nothing is then left in the cache)."""
    config = session.config
    assistant_only = config.training.assistant_only_loss
    key = None
    if data.data_key is not None:
        tokenizer_key = encoded_cache.tokenizer_key(tokenizer)
        key = encoded_cache.entry_key(data.data_key, tokenizer_key, assistant_only)
        entry = encoded_cache.find_entry(key)
        if entry is not None:
            encoded_cache.mark_used(entry)
            session.log(f"encoded data from the cache ({entry.path})")
            train_stats = _stats(entry.meta["train_stats"])
            assert train_stats is not None
            return EncodedData(
                entry.train_dataset(),
                entry.eval_dataset(),
                train_stats,
                _stats(entry.meta.get("eval_stats")),
                from_cache=True,
            )
    if data.deferred:
        session.log("the cached encoding was made with another tokenizer: reading the data again")
        data = replace(load_records(session), data_key=data.data_key)
    require_chat_template(tokenizer, data.kind)
    started = getattr(session, "encoding_while_reading", None)
    if started is not None:
        session.encoding_while_reading = None
        if not started.takes(data, key):
            started.abandon()
            started = None
    if started is not None:
        assert started.folder is not None
        folder, keep_alive = started.folder, None
    elif key is not None:
        folder, keep_alive = encoded_cache.start_staging(key), None
    else:
        keep_alive = tempfile.TemporaryDirectory(prefix="ftstudio-encoded-")
        folder = Path(keep_alive.name)
    records = len(data.train) + len(data.eval)
    train, eval_records = _records_to_encode(data)
    try:
        train_stats = _encode(
            session,
            data.kind,
            tokenizer,
            should_stop,
            train,
            "train set",
            folder / encoded_cache.TRAIN_FILE,
            started.encoding if started is not None else None,
        )
        del train
        eval_stats = None
        if eval_records:
            eval_stats = _encode(
                session,
                data.kind,
                tokenizer,
                should_stop,
                eval_records,
                "eval set",
                folder / encoded_cache.EVAL_FILE,
            )
    except BaseException:
        # Stopped, interrupted or failed: nothing half-written may be found again.
        if key is not None:
            encoded_cache.discard(folder)
        raise
    if key is None:
        from datasets import Dataset

        _release_records(data)

        eval_path = folder / encoded_cache.EVAL_FILE
        return EncodedData(
            Dataset.from_file(str(folder / encoded_cache.TRAIN_FILE)),
            Dataset.from_file(str(eval_path)) if eval_path.exists() else None,
            train_stats,
            eval_stats,
            from_cache=False,
            keep_alive=keep_alive,
        )
    meta = {
        "data_key": data.data_key,
        "kind": data.kind,
        "training_type": config.training_type,
        "sources": [config.data.path, *[m.path for m in config.data.mix]],
        "tokenizer": str(getattr(tokenizer, "name_or_path", "")),
        "max_length": config.data.max_length,
        "records": records,
        "report": data.report.to_dict(),
        "eval_report": data.eval_report.to_dict() if data.eval_report else None,
        "train_stats": asdict(train_stats),
        "eval_stats": asdict(eval_stats) if eval_stats is not None else None,
    }
    entry = encoded_cache.commit(folder, key, meta)
    session.log(f"encoded data cached in {entry.path}")
    _release_records(data)
    return EncodedData(
        entry.train_dataset(), entry.eval_dataset(), train_stats, eval_stats, from_cache=False
    )


def _records_to_encode(data: LoadedData) -> tuple[Records, Records]:
    """The train and eval records; packed (and the Python objects freed) when there are many,
    so that holding them while they are encoded costs about the file's size, not 4x. A large
    file's records are on disk already (a spool): they are read as they are encoded."""
    if len(data.train) + len(data.eval) < PACK_THRESHOLD:
        return _as_records(data.train), _as_records(data.eval)
    train, eval_records = _packed(data.train), _packed(data.eval)
    if train is None or eval_records is None:
        return _as_records(data.train), _as_records(data.eval)
    _release_records(data)
    _return_freed_memory()
    return train, eval_records


def _as_records(records: Sequence[dict[str, Any]]) -> Records:
    return records if isinstance(records, SpooledRecords) else list(records)


def _packed(records: Sequence[dict[str, Any]]) -> Records | None:
    if isinstance(records, SpooledRecords):
        return records
    return PackedRecords.pack(list(records))


def _return_freed_memory() -> None:
    """glibc keeps freed memory in its heap for reuse; malloc_trim hands the free pages back
    to the system, so that the memory of the released records is seen free (glibc only)."""
    import contextlib
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL(name).malloc_trim(0)


def _release_records(data: LoadedData) -> None:
    """The records are not needed once encoded (the trainer reads the Arrow files): their
    memory goes back before training starts."""
    data.train, data.eval, data.deferred = [], [], True


def _encode(
    session: TrainingSession,
    kind: str,
    tokenizer: Any,
    should_stop: Callable[[], bool],
    records: Records,
    stage: str,
    target: Path,
    begun: WorkerEncoding | None = None,
) -> EncodingStats:
    """Encode `records` into `target`, or finish `begun` (started while they were read)."""
    config = session.config
    if begun is not None:
        session.log(
            f"encoding {stage}: {len(records)} records over {begun.workers} processes "
            f"({begun.sent} handed to the workers while the file was read)"
        )
    else:
        workers, reason = choose_workers(len(records))
        session.log(f"encoding {stage}: {reason}")
    # Begun while the data was read: rate and ETA count from then, over every record done.
    started = begun.started if begun is not None else time.monotonic()
    last = 0.0

    def on_progress(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < PROGRESS_INTERVAL and done < total:
            return
        last = now
        elapsed = now - started
        eta = elapsed / done * (total - done) if done else None
        session.publish(PreparationProgress(stage, done, total, elapsed, eta))

    if begun is not None:
        try:
            return begun.finish(records, on_progress, should_stop)
        finally:
            begun.close()
    return encode_to_arrow(
        tokenizer,
        records,
        kind,
        config.data.max_length,
        config.training.assistant_only_loss,
        target,
        workers=workers,
        on_progress=on_progress,
        should_stop=should_stop,
    )


class EarlyPreparation:
    """The run's examples prepared on a thread of their own from the moment the tokenizer is
    loaded, while the model loads (seconds to minutes for a large one), so the first step
    comes that much sooner. The trainer takes them with `result` (an error in preparing is
    raised there); `cancel` stops it, leaving nothing in the cache, when the run fails first.
    """

    def __init__(self, session: TrainingSession, data: LoadedData, tokenizer: Any) -> None:
        self._cancelled = threading.Event()
        self._outcome: EncodedData | BaseException | None = None

        def should_stop() -> bool:
            return self._cancelled.is_set() or session.control.stop_requested

        def prepare() -> None:
            try:
                self._outcome = prepare_encoded(session, data, tokenizer, should_stop)
            except BaseException as error:  # re-raised on the trainer's thread by result()
                self._outcome = error

        # A daemon: an interpreter that is exiting does not wait for a preparation.
        self._thread = threading.Thread(target=prepare, name="ftstudio-data", daemon=True)
        self._thread.start()

    def result(self) -> EncodedData:
        self._thread.join()
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        return outcome

    def cancel(self) -> None:
        """Stop the preparation (between batches) and wait for it to end."""
        self._cancelled.set()
        self._thread.join()


def encodes_early(session: TrainingSession, adds_tokens: bool) -> bool:
    """Whether ftstudio encodes this run's data itself and nothing can change the tokenizer
    before training (new vocabulary tokens are added after the model loads), so that the
    encoding can start before the model is loaded; not for a rank of a torchrun group (the
    ranks prepare in step)."""
    if session.config.training_type not in CACHED_TRAINING_TYPES or adds_tokens:
        return False
    return session.rank is None


def start_early_preparation(
    session: TrainingSession, data: LoadedData, tokenizer: Any, adds_tokens: bool
) -> EarlyPreparation | None:
    """An `EarlyPreparation` when `encodes_early`, else None."""
    if not encodes_early(session, adds_tokens):
        return None
    return EarlyPreparation(session, data, tokenizer)
