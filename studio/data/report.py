"""What happened to a dataset file: records read, kept, dropped, and every bad record's line.

Users complain that dataset mistakes fail silently; the report makes each one visible with a
`FILE:LINE` an editor can jump to.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

ProblemReason = Literal[
    "bad_json",
    "missing_field",
    "empty_field",
    "wrong_type",
    "unknown_format",
    "bad_role",
    "too_large",  # a record over readers.MAX_RECORD_BYTES
    "too_deep",  # a record nested deeper than readers.MAX_RECORD_DEPTH
]
PROBLEM_REASONS: tuple[str, ...] = get_args(ProblemReason)
# Records that are well formed but removed by cleaning; they never stop a run.
CLEANING_REASONS: tuple[str, ...] = ("too_short", "duplicate", "same_answers")


@dataclass(frozen=True)
class RecordProblem:
    """One record that was dropped, and why."""

    file: str
    line: int | None  # 1-based line (JSON, JSONL, CSV, text) or row (Parquet, hub)
    reason: str
    field: str | None = None
    detail: str = ""

    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def __str__(self) -> str:
        detail = self.detail or (f"field '{self.field}'" if self.field else "")
        text = f"{self.location()}: {self.reason}"
        return f"{text}: {detail}" if detail else text


@dataclass
class DataReport:
    """The outcome of reading, validating and cleaning one dataset file."""

    path: str
    format: str | None = None  # detected or given record format (alpaca, sharegpt, ...)
    kind: str | None = None  # conversation | preference | text
    read: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    problems: list[RecordProblem] = field(default_factory=list)  # malformed records
    cleaned_out: list[RecordProblem] = field(default_factory=list)  # too_short, duplicate, ...
    notes: list[str] = field(default_factory=list)
    mix: list[dict[str, Any]] = field(default_factory=list)  # per dataset, when data.mix is set

    def add_problem(self, problem: RecordProblem) -> None:
        self.problems.append(problem)
        self.count_drop(problem.reason)

    def add_cleaned_out(self, problem: RecordProblem) -> None:
        self.cleaned_out.append(problem)
        self.count_drop(problem.reason)

    def count_drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def counts_line(self) -> str:
        text = f"read {self.read}, kept {self.kept}, dropped {self.dropped_total}"
        if self.dropped:
            by_reason = ", ".join(f"{reason} {n}" for reason, n in sorted(self.dropped.items()))
            text += f" ({by_reason})"
        return text

    def summary(self) -> str:
        """A few human lines: what the file is, the counts, and notes."""
        lines = [
            f"file:   {self.path}",
            f"format: {self.format or 'unknown'}",
            f"kind:   {self.kind or 'unknown'}",
            f"records: {self.counts_line()}",
        ]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def problem_lines(self, limit: int | None = None) -> list[str]:
        """Every dropped record as `FILE:LINE: reason: detail`, in file order."""
        everything = sorted(
            [*self.problems, *self.cleaned_out],
            key=lambda p: (p.line is None, p.line or 0),
        )
        lines = [str(problem) for problem in everything[:limit]]
        if limit is not None and len(everything) > limit:
            lines.append(f"... and {len(everything) - limit} more")
        return lines

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["dropped_total"] = self.dropped_total
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataReport:
        """The report `to_dict` wrote (the encoded-dataset cache keeps it)."""
        fields = {key: value for key, value in data.items() if key != "dropped_total"}
        for name in ("problems", "cleaned_out"):
            fields[name] = [RecordProblem(**item) for item in fields.get(name, [])]
        return cls(**fields)
