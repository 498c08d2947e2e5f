"""Chat with a really trained run: the quickstart, trained once for this module.

The compare tests check the weights behind each answer against plain transformers / peft
models loaded independently: the base side must be the base model (a known bug elsewhere
answered both sides with the fine-tuned model).
"""

from __future__ import annotations

import io
import sys
import threading
from pathlib import Path

import pytest

from studio.chat import (
    ChatModel,
    ChatTarget,
    GenerationSettings,
    list_checkpoints,
    resolve_target,
    run_target,
)
from studio.chat.settings import ChatMessage
from studio.cli import main

QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."
SHORT = GenerationSettings(max_new_tokens=24)

# Exact logits against CPU fp32 references, and `chat.device == "cpu"`: CPU only.
# Every test here reads the trained quickstart run (tests/conftest.py: quickstart_run).
pytestmark = [pytest.mark.usefixtures("pin_cpu"), pytest.mark.slow]


@pytest.fixture(scope="module")
def trained_run(quickstart_run: Path, pin_cpu) -> Path:
    """The quickstart run, with checkpoints every 50 steps (conftest's, trained once)."""
    return quickstart_run


@pytest.fixture(scope="module")
def chat(trained_run: Path) -> ChatModel:
    return ChatModel.load(resolve_target(trained_run))


def plain_models(tiny_model_dir: Path, adapter: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tuned_base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tuned = PeftModel.from_pretrained(tuned_base, str(adapter)).eval()
    return base, tuned


def last_logits(model, ids: list[int]):
    import torch

    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0, -1].float()


def greedy_text(model, tokenizer, ids: list[int], max_new_tokens: int) -> str:
    import torch

    with torch.inference_mode():
        output = model.generate(
            input_ids=torch.tensor([ids]), max_new_tokens=max_new_tokens, do_sample=False
        )
    return tokenizer.decode(output[0, len(ids) :], skip_special_tokens=True)


def test_the_tuned_model_answers_the_training_question(chat: ChatModel) -> None:
    assert chat.has_adapter and chat.base_strategy == "disable_adapter" and chat.device == "cpu"
    assert chat.reply([], QUESTION) == ANSWER


def test_compare_answers_with_the_base_weights(chat, trained_run, tiny_model_dir) -> None:
    import torch

    base, tuned = plain_models(tiny_model_dir, trained_run / "adapter")
    ids = chat.encode([], QUESTION).ids

    base_side = chat.next_token_logits([], QUESTION, use_adapter=False)
    adapter_side = chat.next_token_logits([], QUESTION, use_adapter=True)
    assert torch.equal(base_side, last_logits(base, ids))
    assert torch.equal(adapter_side, last_logits(tuned, ids))
    assert not torch.allclose(base_side, adapter_side, atol=1e-3)
    # Switching back and forth leaves nothing behind.
    assert torch.equal(chat.next_token_logits([], QUESTION), adapter_side)

    replies = chat.compare([], QUESTION, SHORT)
    assert replies.adapter == ANSWER
    assert replies.base == greedy_text(base, chat.tokenizer, ids, SHORT.max_new_tokens)
    assert replies.base != replies.adapter


def test_streaming_yields_pieces_that_make_up_the_reply(chat, tiny_model_dir) -> None:
    from transformers import AutoModelForCausalLM

    # The base model answers noise: long, with split multi-byte characters to decode.
    settings = GenerationSettings(max_new_tokens=40)
    pieces = list(chat.stream([], QUESTION, settings, use_adapter=False))
    assert len(pieces) > 5
    whole = chat.reply([], QUESTION, settings, use_adapter=False)
    assert "".join(pieces) == whole
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    assert whole == greedy_text(plain, chat.tokenizer, chat.encode([], QUESTION).ids, 40)

    tuned_pieces = list(chat.stream([], QUESTION))
    assert len(tuned_pieces) > 1 and "".join(tuned_pieces) == ANSWER

    sides = list(chat.stream_compare([], QUESTION, SHORT))
    assert [side for side, _ in sides] == sorted(
        (side for side, _ in sides), key=["base", "adapter"].index
    )
    assert "".join(piece for side, piece in sides if side == "adapter") == ANSWER


def test_cancel_stops_generation_between_tokens(chat: ChatModel) -> None:
    long = GenerationSettings(max_new_tokens=400)
    cancel = threading.Event()
    pieces = []
    for piece in chat.stream([], QUESTION, long, use_adapter=False, cancel=cancel):
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.set()
    assert len(pieces) == 3
    assert not chat.busy
    assert list(chat.stream([], QUESTION, long, cancel=cancel)) == []  # already cancelled

    # From another thread, as the TUI's stop button does.
    cancel = threading.Event()
    received: list[str] = []

    def worker() -> None:
        for piece in chat.stream([], QUESTION, long, use_adapter=False, cancel=cancel):
            received.append(piece)
            if len(received) == 2:
                started.set()

    started = threading.Event()
    thread = threading.Thread(target=worker)
    thread.start()
    assert started.wait(30)
    cancel.set()
    thread.join(30)
    assert not thread.is_alive() and len(received) < 100
    # Closing a stream early (the reader walks away) also ends its generation.
    stream = chat.stream([], QUESTION, long, use_adapter=False)
    next(stream)
    stream.close()
    assert not chat.busy
    assert chat.reply([], QUESTION) == ANSWER


def test_one_generation_at_a_time(chat: ChatModel, monkeypatch: pytest.MonkeyPatch) -> None:
    active, peak = [0], [0]
    original = chat.modes.use
    guard = threading.Lock()

    class Counting:
        def __init__(self, adapter: bool) -> None:
            self.inner = original(adapter)

        def __enter__(self):
            with guard:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            return self.inner.__enter__()

        def __exit__(self, *exc):
            with guard:
                active[0] -= 1
            return self.inner.__exit__(*exc)

    monkeypatch.setattr(chat.modes, "use", Counting)
    results: dict[int, str] = {}

    def ask(number: int) -> None:
        results[number] = chat.reply([], QUESTION, use_adapter=number % 2 == 0)

    threads = [threading.Thread(target=ask, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert peak[0] == 1
    assert results[0] == results[2] == ANSWER and results[1] == results[3] != ANSWER


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(chat: ChatModel) -> None:
    import torch

    torch.manual_seed(1234)
    before = torch.get_rng_state()
    warm = GenerationSettings(temperature=1.0, top_k=50, top_p=0.95, seed=7, max_new_tokens=30)
    first = chat.reply([], QUESTION, warm, use_adapter=False)
    again = chat.reply([], QUESTION, warm, use_adapter=False)
    other = chat.reply([], QUESTION, warm.with_changes(seed=8), use_adapter=False)
    assert first == again and first != other
    assert torch.equal(torch.get_rng_state(), before)


def test_history_and_system_prompt_reach_the_template(chat: ChatModel) -> None:
    history = [ChatMessage("user", QUESTION), ChatMessage("assistant", ANSWER)]
    prompt = chat.encode(history, "What is the capital of Japan?", "Answer briefly.")
    assert [message["role"] for message in prompt.messages] == [
        "system", "user", "assistant", "user",
    ]  # fmt: skip
    text = chat.tokenizer.decode(prompt.ids)
    assert text.index("Answer briefly.") < text.index(ANSWER) < text.index("Japan")
    settings = GenerationSettings(system_prompt="Answer briefly.", max_new_tokens=30)
    assert chat.reply(history, "What is the capital of Japan?", settings)


def test_a_checkpoint_of_the_run_loads(trained_run: Path, tiny_model_dir: Path) -> None:
    import torch

    checkpoints = [info for info in list_checkpoints(trained_run) if info.complete]
    assert len(checkpoints) >= 2  # a mid-training one, not just the last
    earlier = checkpoints[0]
    target: ChatTarget = run_target(trained_run, checkpoint=earlier.step)
    assert resolve_target(earlier.path) == target
    chat = ChatModel.load(target)
    _, tuned = plain_models(tiny_model_dir, earlier.path)
    ids = chat.encode([], QUESTION).ids
    assert torch.equal(chat.next_token_logits([], QUESTION), last_logits(tuned, ids))
    assert chat.reply([], QUESTION, SHORT) == greedy_text(tuned, chat.tokenizer, ids, 24)
    base_only = ChatModel.load(resolve_target(trained_run, base=True))
    assert base_only.base_strategy == "no adapter" and not base_only.has_adapter
    assert torch.equal(
        base_only.next_token_logits([], QUESTION),
        chat.next_token_logits([], QUESTION, use_adapter=False),
    )


def test_cli_prompt_answers_once(trained_run: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["chat", str(trained_run), "--prompt", QUESTION]) == 0
    assert capsys.readouterr().out == ANSWER + "\n"

    assert main(["chat", str(trained_run), "--compare", "--max-new-tokens", "12",
                 "--prompt", QUESTION]) == 0  # fmt: skip
    out = capsys.readouterr().out
    base_part, adapter_part = out.split("[adapter]\n")
    assert base_part.startswith("[base model]\n") and len(base_part) > len("[base model]\n")
    assert adapter_part == ANSWER + "\n"

    assert main(["chat", str(trained_run), "--checkpoint", "latest", "--prompt", QUESTION]) == 0
    assert capsys.readouterr().out == ANSWER + "\n"


def test_cli_repl(trained_run: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = f"{QUESTION}\n/compare\n{QUESTION}\n/reset\n/nonsense\n/quit\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    assert main(["chat", str(trained_run), "--max-new-tokens", "16"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count(ANSWER) == 2 and captured.out.count("[base model]") == 1
    assert "compare on" in captured.err and "new conversation" in captured.err
    assert "unknown command /nonsense" in captured.err
