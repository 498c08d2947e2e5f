"""Read, check and clean a large JSON Lines file as it goes, into a `RecordSpool`.

What `loading.prepare_file` does for any dataset, done a part of the file at a time: the
records, problems, notes and counts are the same (the problems of each part come together, so
their order in the report can differ; their lines do not), but memory holds one part, the
duplicate fingerprints (16 bytes a record) and the spool's offsets, not the whole dataset as
Python objects (about 4x the file).

With `data.format: auto` the file's format is the one most of its records have, which is known
only at the end. The records are converted as they come in the format of the first record that
has one (the winner in any file of one format, and on a tie); only when another format turns
out to have more records is the file read a second time, in that format.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from studio.data.cleaning import RecordCleaner
from studio.data.control_tokens import ControlTokenScan
from studio.data.formats import FORMAT_KIND
from studio.data.readers import RawFile, stream_jsonl
from studio.data.report import DataReport
from studio.data.spool import RecordSpool
from studio.data.validation import FormatVotes, convert_records, dropped_parts_note

# Lines read, checked and cleaned at a time.
CHUNK_LINES = 4096
# Told of the spool as it grows: (spool, kind of its records). Encoding can start on the
# first records while the rest are read (studio.engine.data_preparation).
SpoolListener = Callable[[RecordSpool, str], None]


def prepare_spooled(
    local: Path,
    path: str,
    *,
    data_format: str,
    min_chars: int,
    deduplicate: bool,
    system_prompt: str | None,
    on_spooled: SpoolListener | None = None,
) -> tuple[RecordSpool, DataReport]:
    """`prepare_file` for the JSON Lines file `local` (`path` as the user wrote it);
    `on_spooled` is told of the spool after each part (a second read makes a new spool)."""
    reading = _Reading(local, path, min_chars, deduplicate, system_prompt, on_spooled)
    if data_format != "auto":
        return reading.run(data_format)
    votes = FormatVotes()
    spool, report = reading.run(None, votes)
    decided = votes.decide(path)
    if decided != report.format:
        spool, report = reading.run(decided)
    return spool, report


class _Reading:
    """One read of the file into a new spool and report."""

    def __init__(
        self,
        local: Path,
        path: str,
        min_chars: int,
        deduplicate: bool,
        system_prompt: str | None,
        on_spooled: SpoolListener | None,
    ) -> None:
        self.local, self.path = local, path
        self.min_chars, self.deduplicate = min_chars, deduplicate
        self.system_prompt = system_prompt
        self.on_spooled = on_spooled

    def run(
        self, data_format: str | None, votes: FormatVotes | None = None
    ) -> tuple[RecordSpool, DataReport]:
        """Read in `data_format`, or (None) in the format of the first record that has one,
        the records' votes going to `votes`."""
        report = DataReport(path=self.path)
        spool = RecordSpool(self.path)
        cleaner = RecordCleaner(report, min_chars=self.min_chars, deduplicate=self.deduplicate)
        control_tokens = ControlTokenScan()
        dropped_parts: Counter[str] = Counter()
        waiting: list[RawFile] = []  # parts read before any record showed a format
        for part in stream_jsonl(self.local, self.path, CHUNK_LINES):
            if votes is not None:
                votes.add(part)
                data_format = data_format or votes.first
            waiting.append(part)
            if data_format is None:
                continue
            for ready in waiting:
                converted = convert_records(
                    ready, data_format, self.system_prompt, report, dropped_parts
                )
                for item in cleaner.clean(converted):
                    control_tokens.add_one(item, spool.append(item))
            waiting = []
            if self.on_spooled is not None:
                self.on_spooled(spool, FORMAT_KIND[data_format])
        if data_format is None:  # no record has a format: says which fields they have
            assert votes is not None
            votes.decide(self.path)
        note = dropped_parts_note(self.path, dropped_parts)
        if note is not None:
            report.notes.append(note)
        report.kept = len(spool)
        note = control_tokens.note(self.path)
        if note is not None:
            report.notes.append(note)
        return spool, report
