"""What `ftstudio data prepare` did: per file, per filter, with samples of kept and dropped
text, as a printed summary and as JSON."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

SAMPLE_CHARS = 240
SAMPLES_PER_FILTER = 3
# File-level reasons, in the order the report lists them; record filters follow.
FILE_REASONS = (
    "unsupported", "unreadable", "link_page", "needs_ocr", "empty", "duplicate", "boilerplate",
)  # fmt: skip


@dataclass
class FileOutcome:
    """What happened to one file: kept when at least one of its records is in the corpus."""

    path: str
    kind: str | None
    kept: bool
    reason: str | None = None
    detail: str = ""
    characters: int = 0
    records: int = 0
    records_dropped: dict[str, int] = field(default_factory=dict)
    boilerplate_lines: int = 0
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.path}: {self.reason}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class Sample:
    source: str
    text: str
    detail: str = ""


def sample_of(source: str, text: str, detail: str = "") -> Sample:
    short = " ".join(text.split())
    if len(short) > SAMPLE_CHARS:
        short = short[: SAMPLE_CHARS - 1] + "…"
    return Sample(source, short, detail)


@dataclass
class PrepareReport:
    source: str
    output: str
    settings: dict[str, Any]
    files: list[FileOutcome] = field(default_factory=list)
    records_kept: int = 0
    kept_samples: list[Sample] = field(default_factory=list)
    dropped_samples: dict[str, list[Sample]] = field(default_factory=dict)
    records_dropped_by_filter: Counter[str] = field(default_factory=Counter)
    stopped: str = ""  # why reading stopped before the last file (a bounded preview)

    @property
    def min_chars(self) -> int:
        return int(self.settings["min_chars"])

    @property
    def kept(self) -> list[FileOutcome]:
        return [outcome for outcome in self.files if outcome.kept]

    @property
    def dropped(self) -> list[FileOutcome]:
        return [outcome for outcome in self.files if not outcome.kept]

    def drop_record(self, filter_name: str, source: str, text: str, detail: str) -> None:
        self.records_dropped_by_filter[filter_name] += 1
        samples = self.dropped_samples.setdefault(filter_name, [])
        if len(samples) < SAMPLES_PER_FILTER:
            samples.append(sample_of(source, text, detail))

    def keep_record(self, source: str, text: str) -> None:
        self.records_kept += 1
        if len(self.kept_samples) < SAMPLES_PER_FILTER:
            self.kept_samples.append(sample_of(source, text))

    def dropped_by_reason(self) -> dict[str, int]:
        counts = Counter(str(outcome.reason) for outcome in self.dropped)  # always set
        order = [*FILE_REASONS, *sorted(set(counts) - set(FILE_REASONS))]
        return {reason: counts[reason] for reason in order if counts[reason]}

    def kept_by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(str(outcome.kind) for outcome in self.kept).items()))

    def summary(self) -> str:
        kept = self.kept
        characters = sum(outcome.characters for outcome in kept)
        by_kind = ", ".join(f"{kind} {count}" for kind, count in self.kept_by_kind().items())
        lines = [
            f"read {len(self.files)} files under {self.source}"
            + (f" ({self.stopped})" if self.stopped else ""),
            f"kept {len(kept)} documents as {self.records_kept} records, {characters:,} "
            "characters" + (f" ({by_kind})" if by_kind else "") + f" -> {self.output}",
        ]
        dropped = self.dropped_by_reason()
        if dropped:
            reasons = ", ".join(f"{reason} {count}" for reason, count in dropped.items())
            lines.append(f"dropped {len(self.dropped)} files: {reasons}")
        boilerplate = sum(outcome.boilerplate_lines for outcome in self.files)
        if boilerplate:
            lines.append(
                f"removed {boilerplate} boilerplate lines shared by at least "
                f"{self.settings['boilerplate_min_documents']} documents"
            )
        if self.records_dropped_by_filter:
            lines.append("records dropped by filter:")
            for name, count in self.records_dropped_by_filter.most_common():
                first = self.dropped_samples[name][0]
                lines.append(f"  {name:<15} {count:>6}   e.g. {first.source}: {first.detail}")
                lines.append(f'  {"":<15} {"":>6}   "{first.text[:100]}"')
        return "\n".join(lines)

    def text(self, limit: int) -> str:
        """The summary, then every dropped file with its reason and the notes of kept files,
        at most `limit` of each: what `ftstudio data prepare` prints and the Config screen
        previews."""
        lines = [self.summary()]
        dropped = self.dropped
        if dropped:
            lines.append(f"\ndropped files ({len(dropped)}):")
            lines.extend(f"  {outcome}" for outcome in dropped[:limit])
            if len(dropped) > limit:
                lines.append(f"  ... and {len(dropped) - limit} more")
        noted = [outcome for outcome in self.files if outcome.kept and outcome.notes]
        if noted:
            lines.append("\nnotes:")
            for outcome in noted[:limit]:
                lines.extend(f"  {outcome.path}: {note}" for note in outcome.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "output": self.output,
            "stopped": self.stopped,
            "settings": self.settings,
            "kept_count": len(self.kept),
            "dropped_count": len(self.dropped),
            "records_kept": self.records_kept,
            "dropped_by_reason": self.dropped_by_reason(),
            "records_dropped_by_filter": dict(self.records_dropped_by_filter.most_common()),
            "kept_samples": [asdict(sample) for sample in self.kept_samples],
            "dropped_samples": {
                name: [asdict(sample) for sample in samples]
                for name, samples in self.dropped_samples.items()
            },
            "files": [asdict(outcome) for outcome in self.files],
        }
