"""Does the data suit the training type? Convert where safe, refuse with a hint otherwise."""

from __future__ import annotations

from collections.abc import Callable

from studio.data.cleaning import LineRecord
from studio.data.formats import preference_to_conversation, preference_to_kto
from studio.data.report import DataReport
from studio.data.spool import LineRecords, RecordSpool
from studio.errors import DataError

_NEEDS: dict[str, str] = {
    "sft": "conversation",
    "dpo": "preference",
    "orpo": "preference",
    "pretrain": "text",
    "kto": "kto",
}
_KTO_HINT = (
    "this file holds answers labelled good or bad (a 'label' field): that is KTO data. Use "
    "training_type: kto; sft would learn the answers labelled bad as good ones. To train sft "
    "on the good answers only, keep the records with label true and drop the label field"
)
_PREFERENCE_HINT = (
    "preference training needs records with 'prompt', 'chosen' and 'rejected' "
    '(for example {"prompt": "...", "chosen": "good answer", "rejected": "worse answer"}); '
    "see sample_data/preference_en.jsonl, or use training_type: sft"
)


def fit_training_type(
    records: LineRecords, report: DataReport, training_type: str
) -> tuple[str, LineRecords]:
    """(kind the trainer gets, records converted to it); DataError when they do not fit."""
    kind = report.kind or "unknown"
    needed = _NEEDS[training_type]
    if kind == needed:
        return kind, records
    if kind == "kto" and training_type != "kto":
        raise DataError(
            f"{training_type} cannot use labelled answers in {report.path}",
            location=report.path,
            advice=_KTO_HINT,
        )
    if training_type == "kto" and kind == "preference":
        report.notes.append(
            "preference data for kto: each pair gives a good (chosen) and a bad (rejected) "
            "answer to its prompt"
        )
        return "kto", _converted(
            records,
            lambda r: [
                LineRecord(r.line, unpaired, r.file) for unpaired in preference_to_kto(r.record)
            ],
        )
    if training_type == "kto":
        raise DataError(
            f"kto needs answers labelled good or bad, but {report.path} holds {kind} data "
            f"({report.format})",
            advice='give records such as {"messages": [...], "label": true} or {"prompt": '
            '"...", "completion": "...", "label": false}, or preference pairs',
        )
    if training_type == "sft" and kind == "preference":
        report.notes.append(
            "preference data for sft: each record is trained as prompt + chosen answer; "
            "rejected answers are not used"
        )
        return "conversation", _converted(
            records, lambda r: [LineRecord(r.line, preference_to_conversation(r.record), r.file)]
        )
    if training_type == "sft":
        raise DataError(
            f"sft needs conversation data, but {report.path} holds raw text",
            advice="use training_type: pretrain for raw text, or a file with "
            "instruction/output (alpaca), conversations (sharegpt) or messages fields",
        )
    if needed == "preference":
        raise DataError(
            f"{training_type} needs preference pairs, but {report.path} holds {kind} data "
            f"({report.format})",
            advice=_PREFERENCE_HINT,
        )
    raise DataError(
        f"pretrain needs raw text, but {report.path} holds {kind} data ({report.format})",
        advice="use training_type: sft for instruction or chat data, or give pretrain a .txt "
        "file or records with a 'text' field",
    )


def _converted(
    records: LineRecords, convert: Callable[[LineRecord], list[LineRecord]]
) -> LineRecords:
    """Each record converted (one may give several), kept where the records were: a spool's
    records go to a new spool."""
    if isinstance(records, RecordSpool):
        return records.converted(convert)
    return [new for record in records for new in convert(record)]
