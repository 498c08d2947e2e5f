"""Cleaned records kept on disk, not in memory, while a large dataset waits to be encoded.

A record as Python dicts, lists and strings takes about 4x its JSON text; a dataset of a
million records read into memory would need several times the file's size before the first
step. A `RecordSpool` holds each record as one line of JSON in an unnamed temporary file (it
disappears with the process, even one that is killed) under the ftstudio cache folder, and
keeps in memory only where each line starts and ends and the source line it came from: 24
bytes a record. It is a read-only sequence of `LineRecord`s; `records` is the same sequence
as plain records, and `select` a view of some of them (the eval split) on the same file.
"""

from __future__ import annotations

import json
import os
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, BinaryIO, overload

from studio.data.cleaning import LineRecord
from studio.errors import DataError
from studio.user_settings import cache_root

# Records read back at once by iteration (a few MB of JSON).
READ_CHUNK = 1024
_NO_LINE = -1


def spool_dir() -> str:
    """Where spool files are made: the ftstudio cache folder (on the disk that will hold the
    encoded copy anyway; /tmp is often a small tmpfs, which is memory)."""
    folder = cache_root() / "spool"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(
            f"cannot create {folder} to hold the cleaned records: {error.strerror or error}",
            advice="set FTSTUDIO_CACHE_DIR to a writable folder with free space",
        ) from None
    return str(folder)


class _SpoolFile:
    """The unnamed file and its writer, shared by a spool and its views."""

    def __init__(self) -> None:
        # Open for the spool's life (closed, and gone from the disk, when it is collected).
        self.stream: BinaryIO = tempfile.TemporaryFile(  # noqa: SIM115
            dir=spool_dir(), prefix="records-"
        )
        self.size = 0

    def write(self, data: bytes) -> int:
        """Append `data`; its offset."""
        offset = self.size
        try:
            self.stream.write(data)
        except OSError as error:
            raise _cannot_write(error) from None
        self.size += len(data)
        return offset

    def read(self, offset: int, length: int) -> bytes:
        try:
            self.stream.flush()
        except OSError as error:
            raise _cannot_write(error) from None
        return os.pread(self.stream.fileno(), length, offset)


def _cannot_write(error: OSError) -> DataError:
    """A full disk (or any write error) says where and what to do."""
    return DataError(
        f"cannot write the cleaned records to {spool_dir()}: {error.strerror or error}",
        advice="free some space there, or set FTSTUDIO_CACHE_DIR to a folder on a disk with "
        "more room (it needs about the dataset file's size)",
    )


class RecordSpool(Sequence[LineRecord]):
    """Records of one dataset file, as `LineRecord`s, kept as JSON lines in a temporary file."""

    def __init__(self, file: str, shared: _SpoolFile | None = None) -> None:
        self.file = file  # the dataset file the records came from, as the user wrote it
        self._shared = shared or _SpoolFile()
        self._starts = array("q")
        self._ends = array("q")
        self._lines = array("q")

    # ------------------------------------------------------------ writing

    def append(self, item: LineRecord) -> bytes:
        """Keep `item`; its JSON text, as written."""
        try:
            data = json.dumps(item.record, ensure_ascii=False).encode("utf-8") + b"\n"
        except UnicodeEncodeError:  # a lone surrogate ("\ud800" in the file): kept escaped
            data = json.dumps(item.record).encode("ascii") + b"\n"
        start = self._shared.write(data)
        self._starts.append(start)
        self._ends.append(start + len(data) - 1)  # without the newline
        self._lines.append(_NO_LINE if item.line is None else item.line)
        return data

    def extend(self, items: Iterable[LineRecord]) -> None:
        for item in items:
            self.append(item)

    # ------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self._starts)

    @overload
    def __getitem__(self, index: int) -> LineRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[LineRecord]: ...

    def __getitem__(self, index: int | slice) -> LineRecord | list[LineRecord]:
        if isinstance(index, slice):
            positions = range(len(self))[index]
            return [self._item(at, json.loads(line)) for at, line in self._read(positions)]
        position = range(len(self))[index]  # IndexError as a list gives it
        ((_, line),) = self._read(range(position, position + 1))
        return self._item(position, json.loads(line))

    def __iter__(self) -> Iterator[LineRecord]:
        for start in range(0, len(self), READ_CHUNK):
            yield from self[start : start + READ_CHUNK]

    def lines(self, part: slice) -> list[bytes]:
        """The JSON text of the records in `part`, undecoded (worker processes decode it)."""
        return [line for _, line in self._read(range(len(self))[part])]

    @property
    def records(self) -> SpooledRecords:
        """The same records without their lines: what a trainer takes."""
        return SpooledRecords(self)

    def select(self, positions: Iterable[int]) -> RecordSpool:
        """A spool of the records at `positions` (in that order), on the same file."""
        view = RecordSpool(self.file, self._shared)
        for position in positions:
            view._starts.append(self._starts[position])
            view._ends.append(self._ends[position])
            view._lines.append(self._lines[position])
        return view

    def converted(self, convert: Callable[[LineRecord], Iterable[LineRecord]]) -> RecordSpool:
        """A new spool of what `convert` makes of each record (one record may give several)."""
        result = RecordSpool(self.file)
        for item in self:
            result.extend(convert(item))
        return result

    def _item(self, position: int, record: dict[str, Any]) -> LineRecord:
        line = self._lines[position]
        return LineRecord(None if line == _NO_LINE else line, record, self.file)

    def _read(self, positions: range) -> Iterator[tuple[int, bytes]]:
        """(position, JSON text) of each record in `positions`, read in one piece when they
        lie next to each other in the file (a spool's own order), else one by one."""
        if not positions:
            return
        low = min(self._starts[at] for at in positions)
        high = max(self._ends[at] for at in positions)
        span = high - low
        needed = sum(self._ends[at] - self._starts[at] for at in positions)
        if span <= 2 * needed + 4096:
            block = self._shared.read(low, span)
            for at in positions:
                yield at, block[self._starts[at] - low : self._ends[at] - low]
            return
        for at in positions:
            yield at, self._shared.read(self._starts[at], self._ends[at] - self._starts[at])


class SpooledRecords(Sequence[dict[str, Any]]):
    """A spool's records as plain dicts (what `LoadedData.train` holds), read on demand."""

    def __init__(self, spool: RecordSpool) -> None:
        self.spool = spool

    def __len__(self) -> int:
        return len(self.spool)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [item.record for item in self.spool[index]]
        return self.spool[index].record

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for item in self.spool:
            yield item.record

    def lines(self, part: slice) -> list[bytes]:
        return self.spool.lines(part)


# What reading a dataset gives: its records in memory, or on disk for a large file.
LineRecords = list[LineRecord] | RecordSpool
