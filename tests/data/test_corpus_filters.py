"""`data prepare` filters: near-duplicates, shared boilerplate lines, Gopher / C4 quality
filters, and large files split into bounded records."""

from __future__ import annotations

import itertools
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from studio.data.corpus import encoding
from studio.data.corpus.quality import quality_problem
from studio.data.corpus.settings import PrepareSettings
from studio.data.corpus.split import paragraphs_of, records_of
from studio.data.documents import open_document
from studio.data.prepare import prepare_corpus
from tests.support.sample_documents import prose

SETTINGS = PrepareSettings()


def shingles(text: str) -> set[tuple[str, ...]]:
    words = text.lower().replace(".", " ").replace(",", " ").split()
    return set(zip(*(words[offset:] for offset in range(5)), strict=False))


def test_near_duplicates_collapse_at_the_stated_threshold(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    original = prose(20, 300)
    words = original.split()
    two_words = " ".join([*words[:50], "lantern", *words[51:200], "gull", *words[201:]])
    variants = {
        "a_original.txt": original,
        "b_spacing.txt": original.replace(". ", ".\n\n   ").replace(" the ", "  the  "),
        "c_case.txt": original.upper(),
        "d_two_words.txt": two_words,
        "e_appended.txt": original + "\n\nThis copy was printed for the archive of the town.",
        # Shares its first third with the original and nothing else: not a duplicate.
        "f_other.txt": " ".join(words[:100]) + " " + prose(21, 200),
    }
    for name, text in variants.items():
        (folder / name).write_text(text, encoding="utf-8")
    jaccard = len(shingles(original) & shingles(two_words)) / len(
        shingles(original) | shingles(two_words)
    )
    assert 0.8 < jaccard < 0.95  # what the default threshold of 0.8 must catch

    report = prepare_corpus(folder, tmp_path / "out.jsonl")
    outcomes = {outcome.path: outcome for outcome in report.files}
    assert [path for path, outcome in outcomes.items() if outcome.kept] == [
        "a_original.txt",
        "f_other.txt",
    ]
    for name in ("b_spacing.txt", "c_case.txt"):
        assert outcomes[name].detail == (
            "same text as a_original.txt (ignoring case, spacing and punctuation)"
        )
    for name in ("d_two_words.txt", "e_appended.txt"):
        assert outcomes[name].reason == "duplicate"
        assert outcomes[name].detail.startswith("near-duplicate of a_original.txt (estimated")

    # At threshold 1.0 only the exact (normalised) copies go.
    report = prepare_corpus(folder, tmp_path / "out.jsonl", near_duplicate_threshold=1.0)
    assert sum(outcome.reason == "duplicate" for outcome in report.files) == 2


def test_lines_shared_by_many_documents_are_removed(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for index in range(4):
        text = (
            f"Harbour Town Gazette\n\n{prose(30 + index, 80)}\n\n"
            "Printed by the harbour press on recycled paper.\n"
        )
        (folder / f"issue{index}.md").write_text(text, encoding="utf-8")
    (folder / "letter.md").write_text(f"Harbour Town Gazette\n\n{prose(40, 80)}\n", "utf-8")
    output = tmp_path / "out.jsonl"
    report = prepare_corpus(folder, output)
    corpus = output.read_text(encoding="utf-8")
    assert "Gazette" not in corpus and "recycled" not in corpus  # in 5 and 4 documents
    assert {outcome.path: outcome.boilerplate_lines for outcome in report.files} == {
        "issue0.md": 2, "issue1.md": 2, "issue2.md": 2, "issue3.md": 2, "letter.md": 1,
    }  # fmt: skip
    assert "removed 9 boilerplate lines shared by at least 3 documents" in report.summary()
    # Shared by two documents only: kept at the default of 3, removed at 2.
    report = prepare_corpus(folder, output, boilerplate_min_documents=6)
    assert "Gazette" in output.read_text(encoding="utf-8")


def problem(text: str, kind: str = "text", **settings: object) -> str | None:
    found = quality_problem(text, kind, PrepareSettings(**settings))
    return found.filter if found else None


def test_quality_filters_of_the_gopher_kind() -> None:
    assert problem(prose(1, 100)) is None
    menu = "\n".join(["Home", "News", "Ferries", "About us", "Contact", "Imprint"] * 5)
    assert problem(menu) == "words_per_line"
    assert problem(" ".join(["y"] * 100)) == "word_length"
    assert problem("\n".join(["y"] * 100)) in ("words_per_line", "too_short")
    assert problem("y" * 100) == "too_short"
    repeated = " ".join([prose(2, 25)] * 4)
    assert problem(repeated) == "repetition"
    assert problem(f"{prose(3, 40)}\n" + "\n".join(["Read more about the harbour here."] * 8)) == (
        "repetition"
    )
    links = " ".join(f"https://example.org/harbour/page-{index}.html" for index in range(30))
    assert problem(f"{prose(4, 30)} {links}") == "links"
    assert problem(" ".join(["#harbour #ferry #tides"] * 10) + " " + prose(5, 40)) == "symbols"
    numbers = " ".join(str(1000 + index) for index in range(80))
    assert problem(f"Ships per day were counted. {numbers}") == "non_alphabetic"
    bullets = "\n".join(f"- {sentence}." for sentence in prose(6, 80).split(". "))
    assert problem(bullets) == "bullets"
    ellipses = "\n".join(f"{sentence}..." for sentence in prose(7, 80).split(". "))
    assert problem(ellipses) == "ellipsis"
    assert problem("short piece") == "too_short"
    assert problem("\x00\x01\x02" * 50) == "garbled"


def test_code_and_unspaced_scripts_skip_the_word_filters() -> None:
    code = "def f(x):\n    return {'a': [x, x]}\n\n" * 20
    assert problem(code, "source") is None
    assert problem(code, "text") is not None
    chinese = "港口的渡船每天两次往返于岛屿和大陆之间，渔民们在码头上等待鳟鱼归来。" * 1
    chinese += "灯塔看守人记录了四百一十二次航行，他的数字与港务局的记录相差不到三艘船。"
    assert problem(chinese, min_chars=50) is None


def test_records_stream_from_endless_text() -> None:
    """Splitting never waits for the end of the text: an endless stream gives records."""

    def endless(blank_lines: bool) -> Iterator[str]:
        for index in itertools.count():
            yield prose(index, 40) + ("\n\n" if blank_lines else "\n")

    for blank_lines in (True, False):
        records = records_of(paragraphs_of(endless(blank_lines), 1000), 1000)
        first = list(itertools.islice(records, 5))
        assert len(first) == 5 and all(0 < len(record) <= 1000 for record in first)


def test_a_large_file_becomes_bounded_records_at_paragraph_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encoding, "CHUNK_BYTES", 16_384)  # stream this small file in chunks

    def build(name: str, paragraphs: int) -> list[str]:
        folder = tmp_path / name
        folder.mkdir()
        parts = [prose(1000 + index, 120) for index in range(paragraphs)]
        (folder / "book.txt").write_text("\n\n".join(parts), encoding="utf-8")
        return parts

    def peak(name: str) -> int:
        """Peak memory while a file is read, converted and split into records."""
        document = open_document(tmp_path / name / "book.txt", "text", 4000)
        tracemalloc.start()
        assert sum(len(record) for record in records_of(document.paragraphs, 4000))
        peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak_bytes

    small_paragraphs = build("small", 60)
    build("medium", 240)  # about 180 KB
    build("large", 960)  # four times that
    prepare_corpus(tmp_path / "small", tmp_path / "small.jsonl", max_record_chars=4000)
    lines = (tmp_path / "small.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line)["text"] for line in lines]
    assert len(records) > 10
    assert all(len(record) <= 4000 for record in records)
    # Every record is whole paragraphs, in order, and together they are the whole file.
    assert [part for record in records for part in record.split("\n\n")] == small_paragraphs
    # Four times the text takes the same memory to read and split: it streams.
    medium, large = peak("medium"), peak("large")
    assert large < 1.2 * medium, (medium, large)
