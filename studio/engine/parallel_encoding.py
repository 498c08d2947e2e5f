"""Encode many records into an Arrow file, in batches, over worker processes.

The records go out in batches of `BATCH_RECORDS` to `workers - 1` worker processes, and this
process encodes a batch itself whenever the oldest one sent out is not back yet (it would
otherwise only wait: measured at 20,000 records, its own work beside the workers was 0.2 s of
CPU in 21 s). Each batch comes back as flat numpy arrays (a worker never loads pyarrow), is
wrapped into an Arrow record batch here without a copy and appended to the file in order, so
the encoded examples are never all in memory (the trainer memory-maps the file) and the output
is the same whatever the number of workers.
Between batches the caller's stop flag is checked and progress is reported.

Why not `datasets.Dataset.map(num_proc=N)`: it starts its workers with the `fork` start method
of the `multiprocess` package, which cannot be chosen per call, and forking a process that runs
other threads (the TUI runs the trainer on a thread, beside Textual's own and the telemetry
sampler's) can deadlock a child on a lock another thread held; its progress goes to tqdm only
and it cannot be stopped half-way. Here the workers are started with `spawn` (a fresh
interpreter: safe from any thread), the progress and the stop flag are ours, and each batch is
encoded exactly as `encoding.encode_records` does it (`batch_encoding.encode_batch`).
"""

from __future__ import annotations

import os
import pickle
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from studio.engine.encoding import EncodingStats

if TYPE_CHECKING:
    from studio.engine.batch_encoding import EncodedBatch

# Records per batch. A worker measured here (PSS; alpaca records of ~400 tokens, tiny
# tokenizer): 68 MB once started, 87 MB after its first batch of 256 (the chat-template and
# numpy code it then loads) and 90 MB after ten, against ~125 MB with batches of 1000: the
# Python objects of a batch tokenized with offsets. 256 keeps that small, and the per-call
# overhead too.
BATCH_RECORDS = 256
# Starting a worker (a fresh interpreter that imports transformers and unpickles the
# tokenizer) takes 2-4 s on a loaded 2-core machine, and one process encodes about 2,000
# records/s: below this many records the workers would cost more than they save.
PARALLEL_THRESHOLD = 20_000
MAX_WORKERS = 8


class PreparationStopped(Exception):
    """The user stopped the run while its data was being prepared."""


class PackedRecords:
    """Records kept as one JSON text (bytes) each while they wait to be encoded.

    A record as Python dicts, lists and strings takes about 4x its JSON text (measured: 300
    MB for 100,000 alpaca records, a 73 MB file); packed, the records of a large dataset cost
    about the file's size while the workers encode them. A slice gives the records back."""

    def __init__(self, packed: list[bytes]) -> None:
        self.packed = packed

    @classmethod
    def pack(cls, records: list[dict[str, Any]]) -> PackedRecords | None:
        """The records packed, or None when one is not plain JSON data (a hub dataset's value
        of another type): those are encoded as they are."""
        import json

        try:
            return cls([json.dumps(record, ensure_ascii=False).encode() for record in records])
        except (TypeError, ValueError):
            return None

    def __len__(self) -> int:
        return len(self.packed)

    def __getitem__(self, part: slice) -> list[dict[str, Any]]:
        return unpack(self.packed[part])

    def lines(self, part: slice) -> list[bytes]:
        return self.packed[part]


def unpack(lines: list[bytes]) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in lines]


class RecordLines(Protocol):
    """Records kept as JSON text (`PackedRecords`, or a spool's on disk): a slice gives them
    decoded, `lines` undecoded (for a worker process to decode)."""

    def __len__(self) -> int: ...

    def __getitem__(self, part: slice, /) -> list[dict[str, Any]]: ...

    def lines(self, part: slice) -> list[bytes]: ...


Records = list[dict[str, Any]] | RecordLines


def choose_workers(records: int, cpus: int | None = None) -> tuple[int, str]:
    """(encoding processes, why): this process alone for small datasets or one core, else one
    per usable core up to MAX_WORKERS, this process being one of them."""
    if cpus is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cpus = os.cpu_count() or 1
    override = os.environ.get("FTSTUDIO_ENCODE_WORKERS", "").strip()
    if override.isdigit() and int(override) > 0:
        return int(override), f"FTSTUDIO_ENCODE_WORKERS={override}"
    if cpus < 2:
        return 1, "one usable CPU core"
    if not _workers_can_start():
        return 1, "the main script is not a file a worker process can start from (stdin)"
    if records < PARALLEL_THRESHOLD:
        return 1, (
            f"{records} records: fewer than {PARALLEL_THRESHOLD}, starting worker processes "
            "would cost more than they save"
        )
    workers = min(cpus, MAX_WORKERS)
    return workers, (
        f"{records} records over {workers} processes, one per usable core (this one and "
        f"{workers - 1} worker{'s' if workers > 2 else ''})"
    )


def _workers_can_start() -> bool:
    """`spawn` re-runs the main module in each worker: impossible for a script read from
    stdin (`python - < script.py`); fine for `ftstudio`, `python -m`, `python -c`, notebooks."""
    import sys

    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return path is None or os.path.exists(path)


def _schema() -> Any:
    import pyarrow as pa

    ids = pa.list_(pa.int32())
    return pa.schema([("input_ids", ids), ("labels", ids)])


def _record_batch(batch: EncodedBatch) -> Any:
    """The examples as an Arrow record batch of the file's schema: the columns wrap the
    batch's arrays (one offsets array for both) without copying them."""
    import pyarrow as pa

    offsets = pa.array(batch.offsets)
    return pa.record_batch(
        [
            pa.ListArray.from_arrays(offsets, pa.array(batch.input_ids)),
            pa.ListArray.from_arrays(offsets, pa.array(batch.labels)),
        ],
        schema=_schema(),
    )


def _encode_to_batch(
    tokenizer: Any, records: list[dict[str, Any]], kind: str, max_length: int, assistant_only: bool
) -> tuple[EncodedBatch, EncodingStats]:
    """The examples of `records` as flat arrays: what a worker sends back (three numpy arrays
    pickle small and fast, and a worker never loads pyarrow, ~60 MB of it with its allocator);
    `_record_batch` turns them into Arrow in this process."""
    from studio.engine.batch_encoding import encode_batch

    return encode_batch(tokenizer, records, kind, max_length, assistant_only)


# ---------------------------------------------------------------- worker processes

_worker_tokenizer: Any = None


def _start_worker(tokenizer_bytes: bytes) -> None:
    global _worker_tokenizer
    import signal

    # Ctrl-C and a hung-up terminal reach the whole process group: the parent decides (stop
    # after this batch, or abort and shut the pool down); a worker killed by them would turn a
    # clean stop into a broken pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # The workers are the parallelism: a Rust thread pool in each would only oversubscribe.
    os.environ[_PARALLELISM] = "false"
    _worker_tokenizer = pickle.loads(tokenizer_bytes)


def _worker_encode(
    records: list[dict[str, Any]] | list[bytes], kind: str, max_length: int, assistant_only: bool
) -> tuple[EncodedBatch, EncodingStats]:
    if records and isinstance(records[0], bytes):  # packed: unpacked here, not in the parent
        records = unpack(records)
    return _encode_to_batch(_worker_tokenizer, records, kind, max_length, assistant_only)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the writer


def _add(total: EncodingStats, part: EncodingStats) -> None:
    total.examples += part.examples
    total.truncated += part.truncated
    total.split_documents += part.split_documents
    total.dropped_no_target += part.dropped_no_target
    total.tokens += part.tokens
    total.target_tokens += part.target_tokens


def encode_to_arrow(
    tokenizer: Any,
    records: Records,
    kind: str,
    max_length: int,
    assistant_only: bool,
    target: Path,
    *,
    workers: int = 1,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EncodingStats:
    """Encode `records` into the Arrow file `target`; PreparationStopped when stopped (the
    file is then incomplete: the caller discards it)."""
    if workers > 1:
        encoding = WorkerEncoding(tokenizer, kind, max_length, assistant_only, target, workers)
        try:
            return encoding.finish(records, on_progress, should_stop)
        finally:
            encoding.close()
    import pyarrow as pa

    stats = EncodingStats()
    total = len(records)
    with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_stream(sink, _schema()) as writer:
        for start in range(0, total, BATCH_RECORDS):
            _check_stop(should_stop)
            chunk = records[start : start + BATCH_RECORDS]
            batch, part = _encode_to_batch(tokenizer, chunk, kind, max_length, assistant_only)
            writer.write_batch(_record_batch(batch))
            _add(stats, part)
            if on_progress is not None:
                on_progress(start + len(chunk), total)
    return stats


def _check_stop(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise PreparationStopped("stopped while preparing the data")


_PARALLELISM = "TOKENIZERS_PARALLELISM"
# Batches a reading thread keeps in flight per worker (`WorkerEncoding.feed`): the workers
# stay busy while memory holds a few batches' results, however far ahead the reading is.
FED_PER_WORKER = 4


class WorkerEncoding:
    """Records encoded into an Arrow file by worker processes and this one, in order.

    `feed` hands the workers the first records while the rest are still being read (from
    the reading thread: it never encodes itself, and never waits); `finish` encodes the rest
    with this process taking part, once all the records are known. `close` ends the workers
    (and the file, complete or not: the caller keeps or discards it).
    """

    def __init__(
        self,
        tokenizer: Any,
        kind: str,
        max_length: int,
        assistant_only: bool,
        target: Path,
        workers: int,
    ) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        import pyarrow as pa

        self.tokenizer, self.kind = tokenizer, kind
        self.max_length, self.assistant_only = max_length, assistant_only
        self.workers = workers
        self.started = time.monotonic()
        self.stats = EncodingStats()
        self.sent = 0  # records handed out (to a worker or this process)
        self.pending: deque[tuple[int, Any]] = deque()
        self._sink = pa.OSFile(str(target), "wb")
        self._writer = pa.ipc.new_stream(self._sink, _schema())
        # The processes are the parallelism: the fast tokenizer's own thread pool in this one
        # would take the workers' cores, and its idle threads spin. Measured on 39,000
        # records, 2 cores: this process's CPU 26.9 s with the pool, 21.9 s without, for the
        # same work. The tokenizers library reads the variable at each call.
        self._parallelism = os.environ.get(_PARALLELISM)
        os.environ[_PARALLELISM] = "false"
        # The main process is one of the encoders: it would otherwise sit idle waiting for
        # results, and one worker fewer saves a worker's start-up (an interpreter importing
        # transformers: seconds of a core) and its memory (~85 MB).
        self._executor = ProcessPoolExecutor(
            max_workers=workers - 1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(pickle.dumps(tokenizer),),
        )

    def feed(self, records: Records, available: int) -> None:
        """Hand the workers whole batches of the first `available` records (a few in flight
        per worker), and write the results that are back; returns at once."""
        while self.sent + BATCH_RECORDS <= available and len(self.pending) < FED_PER_WORKER * (
            self.workers - 1
        ):
            self._submit(records)
        while self.pending and self.pending[0][1].done():
            self._write(*self.pending.popleft(), None)

    def finish(
        self,
        records: Records,
        on_progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> EncodingStats:
        """Encode every record not handed out yet, write every result; the statistics."""
        from concurrent.futures import Future

        total = len(records)
        pending = self.pending
        while self.sent < total or pending:
            # A few batches in flight per worker: they stay busy, memory stays bounded.
            while self.sent < total and len(pending) < 2 * self.workers:
                self._submit(records)
            _check_stop(should_stop)
            done, head = pending[0]
            if isinstance(head, Future) and not head.done() and self.sent < total:
                # The workers are busy: the main process encodes the next batch itself.
                chunk = records[self.sent : self.sent + BATCH_RECORDS]
                result = _encode_to_batch(
                    self.tokenizer, chunk, self.kind, self.max_length, self.assistant_only
                )
                self.sent += len(chunk)
                pending.append((self.sent, result))
                continue
            pending.popleft()
            self._write(done, head, on_progress, total)
        return self.stats

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._writer.close()
        self._sink.close()
        if self._parallelism is None:
            os.environ.pop(_PARALLELISM, None)
        else:
            os.environ[_PARALLELISM] = self._parallelism

    def _submit(self, records: Records) -> None:
        part = slice(self.sent, self.sent + BATCH_RECORDS)
        # Packed records travel packed: their JSON is decoded in the worker.
        chunk = records[part] if isinstance(records, list) else records.lines(part)
        future = self._executor.submit(
            _worker_encode, chunk, self.kind, self.max_length, self.assistant_only
        )
        self.sent += len(chunk)
        self.pending.append((self.sent, future))

    def _write(
        self,
        done: int,
        result: Any,
        on_progress: Callable[[int, int], None] | None,
        total: int = 0,
    ) -> None:
        from concurrent.futures import Future

        batch, part = result.result() if isinstance(result, Future) else result
        self._writer.write_batch(_record_batch(batch))
        _add(self.stats, part)
        if on_progress is not None:
            on_progress(done, total)
