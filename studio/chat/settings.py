"""What a chat sends to the model: sampling settings and the conversation so far.

Pure data (no torch): the TUI's chat form reads field descriptions and bounds from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from studio.errors import ConfigError

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = ("system", "user", "assistant")


class GenerationSettings(BaseModel):
    """How a reply is generated. Immutable: change it with `with_changes(...)`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system_prompt: str = Field(
        "",
        max_length=20_000,
        description="Instructions placed before the conversation as a system message; "
        "empty for none.",
    )
    temperature: float = Field(
        0.0,
        ge=0.0,
        le=2.0,
        description="Randomness of sampling. 0 is greedy (always the most likely token, "
        "the same answer every time); 0.7 is a common setting for varied answers.",
    )
    top_p: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="Nucleus sampling: sample only from the most likely tokens whose "
        "probabilities add up to this. 1 keeps all. Ignored when temperature is 0.",
    )
    top_k: int = Field(
        0,
        ge=0,
        le=1000,
        description="Sample only from the K most likely tokens; 0 turns it off. Ignored when "
        "temperature is 0.",
    )
    max_new_tokens: int = Field(256, ge=1, le=8192, description="Longest reply, in tokens.")
    repetition_penalty: float = Field(
        1.0,
        ge=1.0,
        le=2.0,
        description="Above 1 makes tokens already in the conversation less likely, against "
        "loops; 1 turns it off.",
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=2**63 - 1,
        description="Seed for sampling, so the same settings give the same answer; empty for "
        "a fresh random answer each time. Sampling uses its own random generator and never "
        "touches the global one a training run in the same process relies on.",
    )

    completion: bool = Field(
        False,
        description="Plain completion: the model continues the text as written, with no chat "
        "template, history or system prompt (for base models and continued pre-training).",
    )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def with_changes(self, **changes: Any) -> GenerationSettings:
        """A validated copy with some fields changed (a bad value raises ConfigError)."""
        return generation_settings({**self.model_dump(), **changes})


def generation_settings(values: Mapping[str, Any]) -> GenerationSettings:
    """Validate settings from a form or the command line, with a message naming the field."""
    try:
        return GenerationSettings.model_validate(dict(values))
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'settings'}: {item['msg']}"
            for item in error.errors()
        )
        raise ConfigError(f"invalid chat settings: {problems}") from None


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a conversation."""

    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown chat role '{self.role}'; known: {', '.join(ROLES)}")

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


HistoryItem = ChatMessage | Mapping[str, str]


def build_messages(
    history: Sequence[HistoryItem], user_message: str, system_prompt: str = ""
) -> list[dict[str, str]]:
    """The messages for the chat template: system prompt, earlier turns, the new question.

    A system message in `history` is kept only when `system_prompt` is empty, so the
    settings' system prompt always wins and never appears twice.
    """
    turns = [_as_message(item) for item in history]
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    for index, turn in enumerate(turns):
        if turn.role == "system" and (system_prompt or index > 0):
            continue
        messages.append(turn.as_dict())
    messages.append({"role": "user", "content": user_message})
    return messages


def _as_message(item: HistoryItem) -> ChatMessage:
    if isinstance(item, ChatMessage):
        return item
    try:
        return ChatMessage(role=item["role"], content=item["content"])  # type: ignore[arg-type]
    except KeyError as missing:
        raise ValueError(f"a history item needs 'role' and 'content', missing {missing}") from None
