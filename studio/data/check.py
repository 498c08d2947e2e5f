"""`ftstudio data check FILE`: show what a dataset holds and every record that will be dropped."""

from __future__ import annotations

from studio.data.loading import no_usable_records, prepare_file
from studio.data.training_fit import fit_training_type
from studio.errors import DataError

PRINT_LIMIT = 200


def check_main(
    path: str,
    data_format: str = "auto",
    min_chars: int = 1,
    training_type: str | None = None,
    deduplicate: bool = True,
) -> int:
    """Print the report for one dataset file; 0 if it can be trained on, 1 if not."""
    try:
        records, report = prepare_file(
            path, data_format=data_format, min_chars=min_chars, deduplicate=deduplicate
        )
    except DataError as error:
        print(f"error: {error}")
        return 1
    failure: DataError | None = None
    try:
        if training_type is not None:
            _, records = fit_training_type(records, report, training_type)
        if not records:
            failure = no_usable_records(report)
    except DataError as error:
        failure = error
    print(report.summary())
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
