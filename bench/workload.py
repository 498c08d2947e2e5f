"""One benchmark workload: the model, the method, the data, and the steps to time.

Every arm trains on the same token ids: random single-token words of the built-in tiny
model's tokenizer, as text whose encoding is known exactly (each word is one token), so
ftstudio reads it as a pretraining text file and the baselines get the very same ids.
Models other than tiny-demo get random weights of their real shape, saved once to a cache
folder so that every arm loads them from disk the way it would load a real checkpoint.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.shapes import SHAPES, TINY


@dataclass(frozen=True)
class Workload:
    model: str = TINY
    method: str = "lora"  # lora or qlora
    seq: int = 256  # longest sequence in tokens
    batch: int = 8
    lengths: str = "fixed"  # fixed: every sequence is seq long; mixed: seq/8 .. seq
    warmup: int = 3
    steps: int = 20
    rank: int = 16
    learning_rate: float = 1e-4
    seed: int = 42
    checkpointing: bool = False  # ftstudio's gradient_checkpointing
    switches: tuple[str, ...] = ()  # extra ftstudio --set overrides, "training.x=y"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["switches"] = list(self.switches)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Workload:
        return cls(**{**data, "switches": tuple(data.get("switches", ()))})

    @property
    def total_steps(self) -> int:
        return self.warmup + self.steps


def cache_dir() -> Path:
    from studio.user_settings import cache_root

    return cache_root() / "bench-models"


def model_folder(name: str, folder: Path | None = None) -> Path:
    """A folder holding the model of this shape (random weights) and the tiny tokenizer."""
    from studio.models.tiny import ensure_tiny_model

    tiny = ensure_tiny_model()
    if name == TINY:
        return tiny
    target = (folder or cache_dir()) / name
    if (target / "complete").exists():
        return target
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    shape = dict(SHAPES[name])
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    config = AutoConfig.for_model(
        shape.pop("model_type"),
        **shape,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    shutil.rmtree(target, ignore_errors=True)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    del model
    (target / "complete").write_text("random weights of the real shape\n", encoding="utf-8")
    return target


def single_token_words(tokenizer: Any) -> list[int]:
    """Token ids whose text is a space and letters that encodes back to exactly that id."""
    words = []
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        if not (len(text) > 2 and text[0] == " " and text[1:].isalpha()):
            continue
        if tokenizer(text, add_special_tokens=False)["input_ids"] == [token_id]:
            words.append(token_id)
    return words


def sequence_lengths(workload: Workload) -> list[int]:
    rng = random.Random(workload.seed)
    count = workload.batch * workload.total_steps
    if workload.lengths == "fixed":
        return [workload.seq] * count
    return [rng.randint(max(workload.seq // 8, 2), workload.seq) for _ in range(count)]


def write_dataset(tokenizer: Any, workload: Workload, path: Path) -> list[list[int]]:
    """Write the texts as JSONL ({"text": ...}) and return their token ids as ftstudio encodes
    them (the words, then end-of-sequence)."""
    from studio.engine.encoding import encode_text

    words = single_token_words(tokenizer)
    if len(words) < 50:
        raise SystemExit("error: the tokenizer has too few single-token words for the data")
    rng = random.Random(workload.seed + 1)
    texts, ids = [], []
    for length in sequence_lengths(workload):
        chosen = [rng.choice(words) for _ in range(length - 1)]
        text = "".join(tokenizer.decode([token]) for token in chosen)
        (encoded,) = encode_text(tokenizer, text, workload.seq)
        if encoded != [*chosen, tokenizer.eos_token_id]:
            raise SystemExit("error: the benchmark text does not encode back to its tokens")
        texts.append(text)
        ids.append(encoded)
    with path.open("w", encoding="utf-8") as out:
        for text in texts:
            out.write(json.dumps({"text": text}) + "\n")
    return ids
