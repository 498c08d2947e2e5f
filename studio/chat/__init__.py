"""Chat with a base model, a run's adapter or checkpoint: streaming, history, compare mode.

UI-free (the TUI and `ftstudio chat` both drive it) and importable without torch: the heavy
libraries load in `ChatModel.load`.

    target = resolve_target("runs/my-run")             # or run_target(run, checkpoint=50)
    chat = ChatModel.load(target)                       # on a worker thread: takes seconds
    for piece in chat.stream(history, "Hi", settings, cancel=stop_event):
        ...
    chat.compare(history, "Hi", settings)               # base vs. adapter, same settings
"""

from studio.chat.generation import GenerationError
from studio.chat.model import ChatModel, ComparedReplies, Side
from studio.chat.prompt import Prompt, PromptTooLong
from studio.chat.settings import ChatMessage, GenerationSettings, generation_settings
from studio.chat.targets import (
    ChatTarget,
    Checkpoint,
    base_target,
    list_checkpoints,
    resolve_target,
    run_is_active,
    run_target,
)

__all__ = [
    "ChatMessage",
    "ChatModel",
    "ChatTarget",
    "Checkpoint",
    "ComparedReplies",
    "GenerationError",
    "GenerationSettings",
    "Prompt",
    "PromptTooLong",
    "Side",
    "base_target",
    "generation_settings",
    "list_checkpoints",
    "resolve_target",
    "run_is_active",
    "run_target",
]
