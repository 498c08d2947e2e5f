"""Watch the model learn: a few fixed prompts answered every N steps during training.

The prompts are `training.sample_prompts`, or the first prompts of the eval set (else of the
training data) as the model sees them. Every `training.sample_steps` steps (default: four times
a run, and at the last step) the model answers them greedily; the answers go to the run
folder's `samples.jsonl` and out as a `SampleGenerations` event, which the Train screen shows
and the follower replays for an attached run. Greedy decoding makes answers at two steps
comparable: only the weights changed.

Torch and transformers are imported inside the functions; reading samples.jsonl needs neither.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.engine.events import SampleAnswer, SampleGenerations

if TYPE_CHECKING:
    from transformers import (
        PreTrainedTokenizerBase,
        TrainerControl,
        TrainerState,
        TrainingArguments,
    )

    from studio.engine.run_dir import RunDirectory
    from studio.engine.session import TrainingSession

SAMPLES_FILE = "samples.jsonl"
PROMPTS_DRAWN = 2
MAX_NEW_TOKENS = 32
SAMPLES_PER_RUN = 4
PRETRAIN_PROMPT_TOKENS = 16
IGNORE_INDEX = -100


def sample_every(configured: int | None, max_steps: int) -> int:
    """Steps between samples: the configured number, else about four times a run (0: off)."""
    if configured is not None:
        return configured
    return max(-(-max_steps // SAMPLES_PER_RUN), 1)  # rounded up: at most four, then the last


def prompt_ids_of(item: Any) -> list[int] | None:
    """The prompt part of one encoded example: the tokens before the first trained label
    (SFT), the prompt of a preference pair, or the opening tokens of raw text."""
    if not isinstance(item, dict):
        return None
    if "prompt_input_ids" in item:
        return [int(token) for token in item["prompt_input_ids"]]
    ids, labels = item.get("input_ids"), item.get("labels")
    if ids is None:
        return None
    ids = [int(token) for token in ids]
    if labels is not None:
        first = next(
            (index for index, label in enumerate(labels) if int(label) != IGNORE_INDEX), None
        )
        if first:  # the prompt is what comes before the answer
            return ids[:first]
    return ids[:PRETRAIN_PROMPT_TOKENS]


def drawn_prompts(datasets: list[Any], count: int = PROMPTS_DRAWN) -> list[list[int]]:
    """The first `count` distinct prompts of the first dataset that has any."""
    for dataset in datasets:
        if dataset is None:
            continue
        found: list[list[int]] = []
        for index in range(min(len(dataset), 50)):
            ids = prompt_ids_of(dataset[index])
            if ids and ids not in found:
                found.append(ids)
            if len(found) >= count:
                break
        if found:
            return found
    return []


def typed_prompt_ids(tokenizer: PreTrainedTokenizerBase, prompt: str, chat: bool) -> list[int]:
    """A prompt from the config, with the chat template when the run trains on chats."""
    if chat and getattr(tokenizer, "chat_template", None):
        encoded = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True
        )
        if isinstance(encoded, dict) or hasattr(encoded, "keys"):
            encoded = encoded["input_ids"]
        return [int(token) for token in encoded]
    return list(tokenizer(prompt, add_special_tokens=False)["input_ids"])


def generate_answers(model: Any, tokenizer: Any, prompts: list[list[int]]) -> list[SampleAnswer]:
    """Greedy answers to each prompt; the model is put back in training mode after."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    answers = []
    try:
        with torch.no_grad():
            for ids in prompts:
                inputs = torch.tensor([ids], device=device)
                output = model.generate(
                    input_ids=inputs,
                    attention_mask=torch.ones_like(inputs),
                    max_new_tokens=MAX_NEW_TOKENS,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                )
                reply = tokenizer.decode(output[0][len(ids) :], skip_special_tokens=True)
                prompt = tokenizer.decode(ids, skip_special_tokens=True)
                answers.append(SampleAnswer(prompt=prompt.strip(), reply=reply.strip()))
    finally:
        if was_training:
            model.train()
    return answers


def sample_record(event: SampleGenerations) -> dict[str, Any]:
    return {
        "time": event.time,
        "step": event.step,
        "answers": [{"prompt": a.prompt, "reply": a.reply} for a in event.answers],
    }


def sample_event(record: dict[str, Any]) -> SampleGenerations | None:
    """A samples.jsonl line back into its event (None when it is not one)."""
    try:
        answers = tuple(
            SampleAnswer(prompt=str(item["prompt"]), reply=str(item["reply"]))
            for item in record["answers"]
        )
        return SampleGenerations(
            step=int(record["step"]), answers=answers, time=float(record["time"])
        )
    except (KeyError, TypeError, ValueError):
        return None


def read_samples(run_dir: str | Path) -> list[SampleGenerations]:
    """Every sample of a run, oldest first (for Runs: compare answers between steps)."""
    path = Path(run_dir) / SAMPLES_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    events = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
        event = sample_event(record) if isinstance(record, dict) else None
        if event is not None:
            events.append(event)
    return events


def attach_samples_callback(trainer: Any, session: TrainingSession) -> None:
    """Answer the sample prompts during training (skipped, with a logged reason, where it
    cannot: several processes, or no prompt to draw)."""
    from transformers import TrainerCallback

    config = session.config
    if config.training.sample_steps == 0:
        return
    if trainer.args.world_size > 1:
        session.log("samples: off with several processes (each would generate)")
        return
    tokenizer = session.tokenizer
    if config.training.sample_prompts:
        chat = config.training_type != "pretrain"
        prompts = [typed_prompt_ids(tokenizer, p, chat) for p in config.training.sample_prompts]
    else:
        prompts = drawn_prompts([trainer.eval_dataset, trainer.train_dataset])
    if not prompts:
        session.log("samples: no prompt to answer (set training.sample_prompts)", "warning")
        return
    made = session.run_dir
    assert made is not None  # the session made the run folder before training
    run: RunDirectory = made

    class SamplesCallback(TrainerCallback):
        def on_step_end(
            self,
            args: TrainingArguments,
            state: TrainerState,
            control: TrainerControl,
            model: Any = None,
            **kwargs: Any,
        ) -> None:
            every = sample_every(config.training.sample_steps, state.max_steps)
            step = state.global_step
            if step % every and step != state.max_steps:
                return
            if model is None:
                return
            event = SampleGenerations(
                step=step, answers=tuple(generate_answers(model, tokenizer, prompts))
            )
            run.append_jsonl(run.path / SAMPLES_FILE, sample_record(event))
            session.publish(event)

    trainer.add_callback(SamplesCallback())
