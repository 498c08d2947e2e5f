"""Tokenizing only the kept prefix of a long text gives the whole text's first tokens, ids and
offsets, on the tokenizer families it is taken for, and is not taken for the others (issue 17).

The tokenizers are small ones trained here with the `tokenizers` library in the shapes of real
models' tokenizer.json: GPT-2's byte-level BPE, Llama 3's and Qwen2's regex split before a
byte-level BPE, a Metaspace Unigram (T5 / Mistral-like), BERT's WordPiece; and, refused, a
SentencePiece-BPE without a pre-tokenizer (Llama 2 / Gemma), a custom split regex, a regex
normalizer and an added token that strips spaces.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

from studio.engine.kept_prefix import (
    _KNOWN_SPLIT_REGEXES,
    _SAFE_CUT,
    can_cut,
    cut_point,
    encode_kept,
)

LLAMA3, QWEN2 = sorted(_KNOWN_SPLIT_REGEXES, key=lambda pattern: "{1,3}" not in pattern)
SPECIAL = ["<|im_start|>", "<|im_end|>", "<s>"]

_WORDS = (  # noqa: SIM905 (a word list reads better as one string)
    "the of and to in is it's don't they'll we've I'm you'd can't energy 2024 3.14159 "
    "1234567 x86_64 e-mail naïve café Ångström résumé 東京 日本語 😀 👩‍💻 ½ ﬁle Ⅻ ＡＢＣ "
    "e\u0301 a\u0308 foo_bar <|im_end|> <s> http://example.com/a?b=1 C++ ... -- !!!"
).split()


def hostile_text(rng: random.Random, words: int) -> str:
    """Words and the spacing real data has: double spaces, tabs, newlines, trailing space."""
    gaps = [" "] * 12 + ["  ", "\n", "\n\n", "\t", " \n ", "   "]
    parts = []
    for _ in range(words):
        parts.append(rng.choice(_WORDS))
        parts.append(rng.choice(gaps))
    return "".join(parts)


def corpus() -> list[str]:
    rng = random.Random(1)
    return [hostile_text(rng, 30) for _ in range(300)]


def trained(tokenizer: Tokenizer, trainer: Any) -> Tokenizer:
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    tokenizer.add_special_tokens(SPECIAL)
    return tokenizer


def bpe_trainer(byte_level: bool = True) -> Any:
    alphabet = pre_tokenizers.ByteLevel.alphabet() if byte_level else []
    return trainers.BpeTrainer(vocab_size=500, initial_alphabet=alphabet, show_progress=False)


def gpt2() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
    return trained(tokenizer, bpe_trainer())


def regex_split(pattern: str, normalizer: Any = None) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return trained(tokenizer, bpe_trainer())


def metaspace_unigram() -> Tokenizer:
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=300, show_progress=False, unk_token="<unk>")
    return trained(tokenizer, trainer)


def bert() -> Tokenizer:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=400, special_tokens=["[UNK]"], show_progress=False
    )
    return trained(tokenizer, trainer)


def sentencepiece_bpe() -> Tokenizer:
    """Llama 2 / Gemma: spaces become ▁ in the normalizer, and no pre-tokenizer."""
    tokenizer = Tokenizer(models.BPE(byte_fallback=True))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
    )
    return trained(tokenizer, bpe_trainer(byte_level=False))


CUTTABLE = {
    "gpt2": gpt2,
    "llama3": lambda: regex_split(LLAMA3),
    "qwen2": lambda: regex_split(QWEN2, normalizers.NFC()),
    "metaspace-unigram": metaspace_unigram,
    "bert-wordpiece": bert,
}


@pytest.fixture(scope="module", params=sorted(CUTTABLE))
def cuttable(request: pytest.FixtureRequest) -> Tokenizer:
    return CUTTABLE[request.param]()


def at_every_safe_cut(
    tokenizer: Tokenizer, seed: int, texts: int, words: int
) -> Iterator[tuple[str, int, Any, Any]]:
    """(text, cut, the prefix's encoding, the whole text's) at every safe cut of `texts`
    hostile texts of `words` words."""
    rng = random.Random(seed)
    for _ in range(texts):
        text = hostile_text(rng, words)
        whole = tokenizer.encode(text, add_special_tokens=False)
        for found in _SAFE_CUT.finditer(text):
            cut = found.start() + 1
            yield text, cut, tokenizer.encode(text[:cut], add_special_tokens=False), whole


def test_every_safe_cut_keeps_the_tokens_before_it(cuttable: Tokenizer) -> None:
    """The property the shortcut rests on, at every cut point of hostile texts: the prefix's
    tokens are the whole text's first tokens, ids and offsets."""
    assert can_cut(cuttable)
    cuts = 0
    for text, cut, prefix, whole in at_every_safe_cut(cuttable, seed=7, texts=12, words=60):
        assert prefix.ids == whole.ids[: len(prefix)], (text[:cut], text[cut:])
        assert prefix.offsets == whole.offsets[: len(prefix)]
        cuts += 1
    assert cuts > 150


@pytest.mark.parametrize("keep", [3, 17, 64])
@pytest.mark.parametrize("with_offsets", [True, False])
def test_encode_kept_gives_the_whole_texts_first_tokens(
    cuttable: Tokenizer, keep: int, with_offsets: bool
) -> None:
    rng = random.Random(keep)
    # Long and short texts, some denser in tokens than the sample the cut is estimated from.
    texts = [hostile_text(rng, rng.choice([2, 10, 40, 120, 400])) for _ in range(60)]
    texts[20:24] = ["東京日本語" * 80, "1234567890" * 60, "", "a" * 3000]
    kept = encode_kept(cuttable, texts, keep, with_offsets)
    whole = cuttable.encode_batch(texts, add_special_tokens=False)
    shorter = 0
    for text, mine, theirs in zip(texts, kept, whole, strict=True):
        assert mine.ids[:keep] == theirs.ids[:keep], text
        assert (len(mine) > keep) == (len(theirs) > keep)
        if with_offsets:
            assert mine.offsets[:keep] == theirs.offsets[:keep]
        shorter += len(mine) < len(theirs)
    assert shorter >= 10  # the shortcut was taken, not only checked


def test_the_tiny_models_tokenizer_is_cut(tiny_tokenizer: Any) -> None:
    assert can_cut(tiny_tokenizer.backend_tokenizer)


def test_a_sample_denser_than_the_rest_re_tokenizes_the_short_prefixes_whole() -> None:
    """Sample texts of long words, then texts of one-character words: their prefixes come out
    short of `keep` tokens, and are tokenized again whole."""
    tokenizer = gpt2()
    texts = ["energy energy energy"] * 8 + [" ".join("abcdefgh" * 40)] * 4
    kept = encode_kept(tokenizer, texts, 100, True)
    whole = tokenizer.encode_batch(texts, add_special_tokens=False)
    for mine, theirs in zip(kept, whole, strict=True):
        assert mine.ids[:100] == theirs.ids[:100]
        assert (len(mine) > 100) == (len(theirs) > 100)


def _with_stripping_added_token() -> Tokenizer:
    from tokenizers import AddedToken

    tokenizer = gpt2()
    tokenizer.add_special_tokens([AddedToken("<mask>", lstrip=True)])
    return tokenizer


def _with_regex_normalizer() -> Tokenizer:
    tokenizer = gpt2()
    tokenizer.normalizer = normalizers.Replace(Regex(r"a\s+b"), "ab")
    return tokenizer


def _with_spaced_added_token() -> Tokenizer:
    tokenizer = gpt2()
    tokenizer.add_tokens(["new york"])
    return tokenizer


REFUSED = {
    "sentencepiece-bpe without a pre-tokenizer": sentencepiece_bpe,
    "a custom split regex": lambda: regex_split(r"\w+ ?|\W"),
    "a regex normalizer": _with_regex_normalizer,
    "an added token that strips spaces": _with_stripping_added_token,
    "an added token with a space": _with_spaced_added_token,
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_tokenizers_whose_prefixes_may_differ_are_tokenized_whole(name: str) -> None:
    assert not can_cut(REFUSED[name]())


def test_no_pre_tokenizer_really_lets_the_end_change_the_tokens() -> None:
    """Why SentencePiece-BPE is refused: with BPE over the whole text, there are texts whose
    prefix at a safe cut tokenizes differently from the whole (checked, not assumed)."""
    differ = sum(
        prefix.ids != whole.ids[: len(prefix)]
        for _, _, prefix, whole in at_every_safe_cut(
            sentencepiece_bpe(), seed=3, texts=40, words=40
        )
    )
    assert differ > 0


def test_the_cut_is_a_space_between_ascii_alphanumerics_past_the_estimate() -> None:
    text = "ab  cd é f gh ij"
    assert cut_point(text, 3) == 10  # not in "b  c", not beside é
    assert cut_point(text, 11) == 13
    assert cut_point(text, 14) == len(text)  # none left
    assert cut_point("short", 10) == 5


def test_a_token_added_after_a_first_batch_is_taken_into_account() -> None:
    tokenizer = gpt2()
    texts = [hostile_text(random.Random(index), 80) for index in range(12)]
    encode_kept(tokenizer, texts, 16, True)
    assert can_cut(tokenizer)
    tokenizer.add_tokens(["new york"])
    assert not can_cut(tokenizer)
