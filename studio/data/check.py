"""`ftstudio data check FILE`: show what a dataset holds and every record that will be dropped."""

from __future__ import annotations

from pathlib import Path

from studio.data.describe import describe_record
from studio.data.loading import no_usable_records, prepare_file
from studio.data.training_fit import fit_training_type
from studio.errors import DataError

PRINT_LIMIT = 200
SHOWN_CHARS = 400


def check_main(
    path: str,
    data_format: str = "auto",
    min_chars: int = 1,
    training_type: str | None = None,
    deduplicate: bool = True,
    show: int = 3,
    split: str = "train",
    max_records: int | None = None,
) -> int:
    """Print the report for one dataset (file, folder or hub name) and the first `show`
    records as they became; 0 if it can be trained on, 1 if not."""
    try:
        records, report = prepare_file(
            path,
            data_format=data_format,
            min_chars=min_chars,
            deduplicate=deduplicate,
            split=split,
            max_records=max_records,
            streaming=max_records is not None and not Path(path).exists(),
        )
    except DataError as error:
        print(f"error: {error}")
        return 1
    failure: DataError | None = None
    kind = report.kind or "unknown"
    try:
        if training_type is not None:
            kind, records = fit_training_type(records, report, training_type)
        if not records:
            failure = no_usable_records(report)
    except DataError as error:
        failure = error
    print(report.summary())
    if show > 0 and records:
        print(f"\nfirst {min(show, len(records))} records as they became ({kind}):")
        for item in records[:show]:
            where = f"{item.file or report.path}:{item.line}" if item.line else report.path
            text = describe_record(item.record, kind)
            if len(text) > SHOWN_CHARS:
                text = text[:SHOWN_CHARS] + " ..."
            print(f"{where}\n" + "\n".join(f"  {line}" for line in text.splitlines()))
    lines = report.problem_lines(limit=PRINT_LIMIT)
    if lines:
        print(f"\ndropped records ({report.dropped_total}):")
        print("\n".join(lines))
    if failure is not None:
        print(f"\nerror: {failure}")
        return 1
    verdict = f"ok: {report.kept} records can be used"
    if training_type is not None:
        verdict += f" for {training_type}"
    print(f"\n{verdict}")
    return 0
