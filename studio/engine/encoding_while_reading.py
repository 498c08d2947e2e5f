"""Encoding that starts while a large file is still being read.

A large JSON Lines file is read, checked and cleaned by one thread into a spool
(studio.data.spool), seconds of one core for 100,000 records. When the tokenizer is known by
then, the worker processes need not wait for the end: `EncodingWhileReading` is told of the
spool after each part read and hands them whole batches of its first records, so the workers
start (an interpreter importing transformers) and encode while the rest is read.

Their work counts only if the records read are the run's training set as they are: one file
in one format, no eval_fraction split, mix or replay, no conversion for the training type.
Whether they are is known once the file is read (`takes`); if not, the encoding is abandoned
(`abandon`: workers ended, its staging folder removed) and the data is encoded as usual.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.data.spool import RecordSpool, SpooledRecords
from studio.engine import encoded_cache
from studio.engine.encoding import require_chat_template
from studio.engine.parallel_encoding import PARALLEL_THRESHOLD, WorkerEncoding, choose_workers
from studio.errors import StudioError

if TYPE_CHECKING:
    from studio.data import LoadedData
    from studio.engine.session import TrainingSession

ENCODED_KINDS = ("conversation", "text")


def encoding_while_reading(
    session: TrainingSession, tokenizer: Any, key: str
) -> EncodingWhileReading | None:
    """An `EncodingWhileReading` for the run's data.path, when its training set may be the
    records as read and there are worker processes to encode them; None otherwise."""
    data = session.config.data
    if data.eval_fraction > 0 or data.mix or data.replay_path:
        return None
    workers, _ = choose_workers(PARALLEL_THRESHOLD)
    if workers <= 1:
        return None
    return EncodingWhileReading(session, tokenizer, key, workers)


class EncodingWhileReading:
    """The listener a spooled read tells of each part (`studio.data.spooled_prepare`)."""

    def __init__(self, session: TrainingSession, tokenizer: Any, key: str, workers: int) -> None:
        self.session, self.tokenizer, self.key = session, tokenizer, key
        self.workers = workers
        self.spool: RecordSpool | None = None
        self.kind: str | None = None
        self.folder: Path | None = None
        self.encoding: WorkerEncoding | None = None
        self.abandoned = False

    def __call__(self, spool: RecordSpool, kind: str) -> None:
        if self.abandoned:
            return
        try:
            self._feed(spool, kind)
        except Exception:
            self.abandon()

    def _feed(self, spool: RecordSpool, kind: str) -> None:
        if self.encoding is not None and (spool is not self.spool or kind != self.kind):
            self._drop()  # read a second time, in the format most records have: start over
        if self.encoding is None:
            if kind not in ENCODED_KINDS:
                self.abandon()
                return
            try:
                require_chat_template(self.tokenizer, kind)
            except StudioError:  # said, with its advice, when the run checks it
                self.abandon()
                return
            config = self.session.config
            self.spool, self.kind = spool, kind
            self.folder = encoded_cache.start_staging(self.key)
            self.encoding = WorkerEncoding(
                self.tokenizer,
                kind,
                config.data.max_length,
                config.training.assistant_only_loss,
                self.folder / encoded_cache.TRAIN_FILE,
                self.workers,
            )
        self.encoding.feed(spool.records, len(spool))

    def takes(self, data: LoadedData, key: str | None) -> bool:
        """Whether the records fed are `data`'s training set, for the cache entry `key`."""
        return (
            not self.abandoned
            and self.encoding is not None
            and key == self.key
            and data.kind == self.kind
            and isinstance(data.train, SpooledRecords)
            and data.train.spool is self.spool
        )

    def abandon(self) -> None:
        """End the workers and remove what was written (again: nothing happens)."""
        self.abandoned = True
        self._drop()

    def _drop(self) -> None:
        if self.encoding is not None:
            with contextlib.suppress(Exception):
                self.encoding.close()
            self.encoding = None
        if self.folder is not None:
            encoded_cache.discard(self.folder)
            self.folder = None
