"""Run `model.generate` on a thread and hand its new token ids over one step at a time.

`generate` (rather than a hand-written token loop) keeps every method working: PEFT's prompt
and prefix methods inject their virtual tokens through `generate`'s own input preparation,
which a manual loop with a KV cache would bypass. Stopping is a StoppingCriteria that reads
threading events, so a cancel takes effect after the token being computed.

Sampling draws from its own `torch.Generator`: transformers samples with the global RNG, and
seeding that would disturb a training run in the same process (dropout, data order). Greedy
decoding (temperature 0) uses plain `do_sample=False`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from studio.chat.settings import GenerationSettings
from studio.errors import StudioError

_END = object()


class GenerationError(StudioError):
    """Generation failed in a way the user can act on (out of memory, for one)."""


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def generate_token_steps(
    model_context: Callable[[], AbstractContextManager[Any]],
    prompt_ids: list[int],
    settings: GenerationSettings,
    *,
    device: str,
    eos_token_ids: list[int],
    pad_token_id: int | None,
    stop_events: tuple[threading.Event, ...],
) -> Iterator[list[int]]:
    """Yield the ids generated at each step until an end token, the length limit or a stop.

    `model_context()` is entered on the generation thread and gives the model to use (the
    adapter switched on or off). Closing the iterator early stops generation and waits for
    the thread, so no generation outlives its caller.
    """
    steps: queue.Queue[Any] = queue.Queue()
    own_stop = threading.Event()
    events = (*stop_events, own_stop)

    def work() -> None:
        try:
            _generate(model_context, prompt_ids, settings, device, eos_token_ids,
                      pad_token_id, events, steps)  # fmt: skip
        except BaseException as error:
            steps.put(_Failure(error))
        finally:
            steps.put(_END)

    thread = threading.Thread(target=work, name="ftstudio-chat-generate", daemon=True)
    thread.start()
    try:
        while True:
            item = steps.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                error = _user_error(item.error)
                if error is item.error:
                    raise error
                raise error from item.error
            if any(event.is_set() for event in stop_events):
                return
            yield item
    finally:
        own_stop.set()
        thread.join()


def _generate(
    model_context: Callable[[], AbstractContextManager[Any]],
    prompt_ids: list[int],
    settings: GenerationSettings,
    device: str,
    eos_token_ids: list[int],
    pad_token_id: int | None,
    events: tuple[threading.Event, ...],
    steps: queue.Queue[Any],
) -> None:
    import torch
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

    config = GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        do_sample=False,
        repetition_penalty=settings.repetition_penalty,
        eos_token_id=eos_token_ids or None,
        pad_token_id=pad_token_id,
    )
    processors = LogitsProcessorList()
    if not settings.greedy:
        processors.append(_seeded_sampler(settings, device))
    input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    with torch.inference_mode(), model_context() as model:
        model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            generation_config=config,
            logits_processor=processors,
            stopping_criteria=StoppingCriteriaList([_stop_criteria(events)]),
            streamer=_QueueStreamer(steps),
        )


def _user_error(error: BaseException) -> BaseException:
    try:
        import torch

        out_of_memory = isinstance(error, torch.OutOfMemoryError)
    except (ImportError, AttributeError):
        out_of_memory = False
    if out_of_memory:
        return GenerationError(
            "out of GPU memory while generating",
            advice="lower max new tokens, start a new conversation (the history is part of "
            "every prompt), or chat on the CPU",
        )
    return error


def _stop_criteria(events: tuple[threading.Event, ...]) -> Any:
    import torch
    from transformers import StoppingCriteria

    class StopOnEvent(StoppingCriteria):
        """Stop every sequence once any of the events is set (cancel, or the reader left)."""

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            stop = any(event.is_set() for event in events)
            batch = input_ids.shape[0]
            return torch.full((batch,), stop, dtype=torch.bool, device=input_ids.device)

    return StopOnEvent()


def _seeded_sampler(settings: GenerationSettings, device: str) -> Any:
    """A logits processor that samples the next token itself and leaves only that one possible,
    so the greedy step that follows picks it: sampling with a private, seedable generator.
    """
    import torch
    from transformers import (
        LogitsProcessor,
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    generator = torch.Generator(device=device)
    if settings.seed is None:
        generator.seed()
    else:
        generator.manual_seed(settings.seed)
    warpers = LogitsProcessorList([TemperatureLogitsWarper(settings.temperature)])
    if settings.top_k:
        warpers.append(TopKLogitsWarper(top_k=settings.top_k))
    if settings.top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=settings.top_p))

    class SeededSampler(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            warped = warpers(input_ids, scores)
            probabilities = torch.softmax(warped.float(), dim=-1)
            chosen = torch.multinomial(probabilities, num_samples=1, generator=generator)
            only = torch.full_like(scores, float("-inf"))
            return only.scatter_(1, chosen, 0.0)

    return SeededSampler()


def _token_ids(value: Any) -> list[int]:
    return [int(token) for token in value.reshape(-1).tolist()]


class _QueueStreamer:
    """A transformers streamer (put / end) that queues each step's new ids, skipping the prompt."""

    def __init__(self, steps: queue.Queue[Any]) -> None:
        self.steps = steps
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True  # generate() first hands over the prompt itself
            return
        self.steps.put(_token_ids(value))

    def end(self) -> None:
        pass  # the generation thread queues the end marker, also after an error
