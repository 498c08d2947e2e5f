"""studio.formatting: the one place sizes, durations and numbers are printed."""

from __future__ import annotations

import pytest

from studio.formatting import (
    GIB,
    KIB,
    MIB,
    format_bytes,
    format_count,
    format_duration,
    format_loss,
    format_rate,
    gib,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "?"),
        (512, "512 B"),
        (12 * KIB, "12 KiB"),
        (300 * MIB, "300 MiB"),
        (GIB, "1.0 GiB"),
        (int(61.24 * GIB), "61.2 GiB"),
    ],
)
def test_bytes_take_the_largest_unit_under_the_value(value, text) -> None:
    assert format_bytes(value) == text


def test_missing_sizes_print_the_callers_placeholder() -> None:
    assert format_bytes(None, missing="-") == "-"
    assert gib(None) == "?" and gib(int(79.6 * GIB)) == "79.6"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "--:--"), (0, "00:00"), (65.9, "01:05"), (3600, "1:00:00"), (37230, "10:20:30")],
)
def test_durations(seconds, text) -> None:
    assert format_duration(seconds) == text


def test_counts_losses_and_rates() -> None:
    assert [format_count(v) for v in (812, 2.4e6, 494e6, 1.5e9, None)] == [
        "812",
        "2.4M",
        "494M",
        "1.5B",
        "?",
    ]
    assert format_loss(1.23456) == "1.2346" and format_loss(None) == "-"
    assert format_rate(2e-4) == "2.00e-04" and format_rate(None) == "-"
