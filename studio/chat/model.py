"""A loaded chat model: base model plus trained method, streaming replies, compare mode.

Thread-safety: every method may be called from any thread (the TUI calls them on a worker).
One generation runs at a time per ChatModel: a second `stream()` waits until the first one
ends, so cancel the running one first. A `stream()` iterator holds the model until it is
exhausted or closed; a `cancel` event stops it after the token being computed.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from studio.chat.adapter_modes import AdapterModes
from studio.chat.decoding import IncrementalDecoder
from studio.chat.generation import generate_token_steps
from studio.chat.loading import load_chat_parts
from studio.chat.prompt import Prompt, encode_completion, encode_prompt
from studio.chat.settings import GenerationSettings, HistoryItem
from studio.chat.targets import ChatTarget
from studio.errors import ModelError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from studio.models.loading import DevicePlan

Side = Literal["base", "adapter"]


@dataclass(frozen=True)
class ComparedReplies:
    """The same prompt answered by the base model and by the model with the trained method."""

    base: str
    adapter: str


class ChatModel:
    """Use `ChatModel.load(target)`; the constructor takes already loaded parts."""

    def __init__(
        self,
        target: ChatTarget,
        modes: AdapterModes,
        tokenizer: PreTrainedTokenizerBase,
        plan: DevicePlan,
    ) -> None:
        self.target = target
        self.modes = modes
        self.tokenizer = tokenizer
        self.plan = plan
        self._lock = threading.Lock()
        model = modes.models()[0]
        self.context_length = _context_length(model)
        self._eos_token_ids = _eos_token_ids(model, tokenizer)

    # -- loading --------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        target: ChatTarget,
        *,
        device: str | None = None,
        check_memory: bool = True,
        on_progress: Callable[[str], object] | None = None,
    ) -> ChatModel:
        """Load the base model and the target's trained method on the best device.

        `device` "cpu" or "cuda" overrides the choice. On a GPU the free memory is checked
        first (a run may be training on it) and loading is refused with advice when the model
        would not fit; `check_memory=False` skips that.
        """
        modes, tokenizer, plan = load_chat_parts(
            target, device=device, check_memory=check_memory, on_progress=on_progress
        )
        return cls(target, modes, tokenizer, plan)

    # -- properties -----------------------------------------------------------------------

    @property
    def has_adapter(self) -> bool:
        return self.target.has_adapter

    @property
    def device(self) -> str:
        return self.plan.device

    @property
    def base_strategy(self) -> str:
        """How base answers are produced: "disable_adapter", "separate base copy", "no adapter"."""
        return self.modes.strategy

    @property
    def busy(self) -> bool:
        """True while a generation is running."""
        return self._lock.locked()

    # -- chatting -------------------------------------------------------------------------

    def stream(
        self,
        history: Sequence[HistoryItem],
        user_message: str,
        settings: GenerationSettings | None = None,
        *,
        use_adapter: bool = True,
        cancel: threading.Event | None = None,
    ) -> Generator[str, None, None]:
        """Yield the reply to `user_message` after `history` in pieces, as it is generated.

        `use_adapter=False` answers with the base model. Setting `cancel` stops after the
        current token. With no adapter loaded, `use_adapter` has no effect.
        """
        settings = settings or GenerationSettings()
        with self._lock:
            yield from self._stream_locked(history, user_message, settings, use_adapter, cancel)

    def reply(
        self,
        history: Sequence[HistoryItem],
        user_message: str,
        settings: GenerationSettings | None = None,
        *,
        use_adapter: bool = True,
        cancel: threading.Event | None = None,
    ) -> str:
        """The whole reply at once (the concatenation of what `stream()` yields)."""
        return "".join(
            self.stream(history, user_message, settings, use_adapter=use_adapter, cancel=cancel)
        )

    def stream_compare(
        self,
        history: Sequence[HistoryItem],
        user_message: str,
        settings: GenerationSettings | None = None,
        *,
        cancel: threading.Event | None = None,
    ) -> Iterator[tuple[Side, str]]:
        """Yield ("base", piece) for the base model's whole reply, then ("adapter", piece).

        Both replies use the same settings (and the same seed when sampling), so any
        difference comes from the trained method.
        """
        self._require_adapter()
        settings = settings or GenerationSettings()
        with self._lock:
            for side, use_adapter in (("base", False), ("adapter", True)):
                for piece in self._stream_locked(
                    history, user_message, settings, use_adapter, cancel
                ):
                    yield side, piece  # type: ignore[misc]
                if cancel is not None and cancel.is_set():
                    return

    def compare(
        self,
        history: Sequence[HistoryItem],
        user_message: str,
        settings: GenerationSettings | None = None,
        *,
        cancel: threading.Event | None = None,
    ) -> ComparedReplies:
        """Both whole replies: base model and trained method."""
        pieces: dict[str, list[str]] = {"base": [], "adapter": []}
        for side, piece in self.stream_compare(history, user_message, settings, cancel=cancel):
            pieces[side].append(piece)
        return ComparedReplies(base="".join(pieces["base"]), adapter="".join(pieces["adapter"]))

    def next_token_logits(
        self,
        history: Sequence[HistoryItem],
        user_message: str,
        *,
        system_prompt: str = "",
        use_adapter: bool = True,
    ) -> Any:
        """The logits for the reply's first token (a 1-D float32 CPU tensor), for inspection
        and for tests that check which weights answer.
        """
        import torch

        prompt = self.encode(history, user_message, system_prompt)
        with self._lock, torch.inference_mode(), self.modes.use(use_adapter) as model:
            ids = torch.tensor([prompt.ids], dtype=torch.long, device=self.plan.device)
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
            return logits[0, -1].float().cpu()

    def encode(
        self,
        history: Sequence[HistoryItem],
        user_message: str,
        system_prompt: str = "",
        max_new_tokens: int = 0,
    ) -> Prompt:
        """The prompt the model will see, as token ids (oldest turns dropped to fit)."""
        limit = self.context_length - max_new_tokens if self.context_length else None
        return encode_prompt(self.tokenizer, history, user_message, system_prompt, limit)

    def encode_completion(self, text: str, max_new_tokens: int = 0) -> Prompt:
        """The text to continue in plain-completion mode, as token ids (its end kept to fit)."""
        limit = self.context_length - max_new_tokens if self.context_length else None
        return encode_completion(self.tokenizer, text, limit)

    def close(self) -> None:
        """Free the model's memory (waits for a running generation to end)."""
        with self._lock:
            self.modes = _ClosedModes()
        gc.collect()
        if self.plan.device == "cuda":
            import torch

            torch.cuda.empty_cache()

    # -- internals ------------------------------------------------------------------------

    def _stream_locked(
        self,
        history: Sequence[HistoryItem],
        user_message: str,
        settings: GenerationSettings,
        use_adapter: bool,
        cancel: threading.Event | None,
    ) -> Iterator[str]:
        if cancel is not None and cancel.is_set():
            return
        if settings.completion:
            prompt = self.encode_completion(user_message, settings.max_new_tokens)
        else:
            prompt = self.encode(
                history,
                user_message,
                settings.system_prompt,
                max_new_tokens=settings.max_new_tokens,
            )
        decoder = IncrementalDecoder(self.tokenizer)
        steps = generate_token_steps(
            lambda: self.modes.use(use_adapter),
            prompt.ids,
            settings,
            device=self.plan.device,
            eos_token_ids=self._eos_token_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            stop_events=(cancel,) if cancel is not None else (),
        )
        try:
            for ids in steps:
                piece = decoder.add(ids)
                if piece:
                    yield piece
        finally:
            steps.close()  # type: ignore[attr-defined]
        if cancel is None or not cancel.is_set():
            tail = decoder.flush()
            if tail:
                yield tail

    def _require_adapter(self) -> None:
        if not self.has_adapter:
            raise ModelError(
                "compare mode needs a trained adapter; this chat has the base model only",
                advice="open a run, one of its checkpoints, or an adapter folder",
            )


class _ClosedModes(AdapterModes):
    strategy = "closed"

    def use(self, adapter: bool) -> Any:
        raise ModelError("this chat model was closed", advice="load it again")

    def models(self) -> list[Any]:
        return []


def _context_length(model: Any) -> int | None:
    config = getattr(model, "config", None)
    if config is None:
        return None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    length = getattr(text, "max_position_embeddings", None)
    return int(length) if isinstance(length, int) and length > 0 else None


def _eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    generation_config = getattr(model, "generation_config", None)
    configured = getattr(generation_config, "eos_token_id", None)
    for value in [configured] if isinstance(configured, int) else list(configured or []):
        if value not in ids:
            ids.append(int(value))
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(int(tokenizer.eos_token_id))
    from studio.models.chat_templates import stop_token_ids

    # A chat-template preset may end turns with its own marker (<|im_end|>, <|eot_id|>).
    ids += [token for token in stop_token_ids(tokenizer) if token not in ids]
    return ids
