"""The thresholds of `ftstudio data prepare`, with their defaults and why.

They can be given in a YAML file (`--settings prepare.yaml`, keys as below) and a few of them
on the command line. The quality filters follow Gopher (Rae et al. 2021, appendix A) and C4
(Raffel et al. 2020), loosened where those were written for English web text only.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from studio.config.files import read_yaml_file
from studio.errors import ConfigError


class PrepareSettings(BaseModel):
    """Every threshold of corpus preparation."""

    model_config = ConfigDict(extra="forbid")

    min_chars: int = Field(100, ge=0, description="Drop pieces shorter than this many characters.")
    min_words: int = Field(
        20, ge=0, description="Drop pieces with fewer words (Gopher: 50 for web pages)."
    )
    max_garbled: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Drop pieces whose share of replacement, control or unassigned characters "
        "is above this.",
    )
    max_record_chars: int = Field(
        8000,
        ge=500,
        description="Split longer documents at paragraph boundaries into records of at most "
        "this many characters (about 2,000 tokens), so no record needs gigabytes to tokenize.",
    )
    near_duplicate_threshold: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Drop a piece whose estimated Jaccard similarity (word 5-gram shingles, "
        "MinHash with 128 permutations, LSH) with a kept piece is at least this. 1.0 keeps "
        "near-duplicates and drops only exact ones.",
    )
    boilerplate_min_documents: int = Field(
        3,
        ge=2,
        description="Remove a line (ignoring case and spacing) that occurs in at least "
        "this many documents: menus, cookie notices and footers shared by the pages of a site.",
    )
    min_mean_words_per_line: float = Field(
        3.0, ge=0, description="Drop pieces whose lines hold fewer words on average (menus)."
    )
    min_mean_word_length: float = Field(2.0, ge=0, description="Gopher: 3.")
    max_mean_word_length: float = Field(12.0, gt=0, description="Gopher: 10.")
    max_symbol_word_ratio: float = Field(
        0.1, ge=0, description="Gopher: at most 0.1 '#' or '...' per word."
    )
    max_bullet_line_share: float = Field(
        0.9, ge=0, le=1, description="Gopher: at most 90% of lines start with a bullet."
    )
    max_ellipsis_line_share: float = Field(
        0.3, ge=0, le=1, description="Gopher: at most 30% of lines end with '...'."
    )
    min_alphabetic_word_share: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Gopher: 80% of words hold a letter; 70% leaves room for tables of numbers.",
    )
    max_link_char_share: float = Field(
        0.2, ge=0, le=1, description="Drop pieces where URLs make up more of the characters."
    )
    max_duplicate_line_share: float = Field(
        0.3, ge=0, le=1, description="Gopher: at most 30% of lines are repeats of another line."
    )
    max_duplicate_paragraph_share: float = Field(
        0.3, ge=0, le=1, description="Gopher: at most 30% of paragraphs are repeats."
    )
    max_top_ngram_share: dict[int, float] = Field(
        {2: 0.2, 3: 0.18, 4: 0.16},
        description="Gopher: the most frequent n-gram covers at most this share of characters.",
    )
    max_duplicate_ngram_share: dict[int, float] = Field(
        {5: 0.15, 7: 0.13, 10: 0.10},
        description="Gopher: characters in repeated n-grams are at most this share "
        "(Gopher checks n = 5..10; three of them catch the same documents at a third of "
        "the cost).",
    )


def load_prepare_settings(path: str | Path | None, **overrides: object) -> PrepareSettings:
    """Settings from a YAML file (or the defaults), then the command-line overrides."""
    values: dict[str, object] = {}
    if path is not None:
        file = read_yaml_file(
            Path(path).expanduser(), what="settings file", advice="give a YAML file of thresholds"
        )
        loaded = file.data or {}
        if not isinstance(loaded, dict):
            raise ConfigError("expected a mapping of threshold names to values", location=str(path))
        values.update(loaded)
    values.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return PrepareSettings(**values)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ConfigError(
            f"{field}: {first['msg']}",
            advice="see `ftstudio data prepare --help` and studio/data/corpus/settings.py",
            location=str(path) if path else None,
        ) from None
