"""Named chat templates for base models whose tokenizer ships none, and the automatic choice.

Every preset renders a conversation so that each prefix's rendering (with the generation
prompt) is a prefix of the whole one, which is what `studio.engine.encoding` needs to put the
loss on the assistant's turns only. `chatml` (alias `qwen`) also renders tool definitions,
calls and results the way Qwen 2.5 / Hermes do; the other presets get tool calls written into
the text by the encoder.

The choice is made from the tokenizer alone, before the model loads, and explained in one
line for the run log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Literal text goes through {{ }} expressions: transformers renders templates with trim_blocks
# and lstrip_blocks, which would eat newlines written right after or before a {% %} tag.
_CHATML = (
    "{% if tools %}{{ '<|im_start|>system\\n' }}"
    "{% if messages[0].role == 'system' %}{{ messages[0].content + '\\n\\n' }}{% endif %}"
    "{{ '# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}"
    "{% for tool in tools %}{{ '\\n' + (tool | tojson) }}{% endfor %}"
    "{{ '\\n</tools>\\n\\nFor each function call, return a json object with function name "
    'and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": '
    '<function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\' }}'
    "{% elif messages and messages[0].role == 'system' %}"
    "{{ '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if message.role == 'system' %}"
    "{% elif message.role == 'assistant' and message.tool_calls %}"
    "{{ '<|im_start|>assistant' }}"
    "{% if message.content %}{{ '\\n' + message.content }}{% endif %}"
    "{% for call in message.tool_calls %}"
    "{{ '\\n<tool_call>\\n{\\\"name\\\": ' + (call.function.name | tojson) "
    "+ ', \\\"arguments\\\": ' + (call.function.arguments | tojson) + '}\\n</tool_call>' }}"
    "{% endfor %}{{ '<|im_end|>\\n' }}"
    "{% elif message.role == 'tool' %}"
    "{% if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{ '<|im_start|>user' }}"
    "{% endif %}"
    "{{ '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}"
    "{% if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{ '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% else %}{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_LLAMA3 = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + ('ipython' if message.role == 'tool' else message.role) "
    "+ '<|end_header_id|>\\n\\n' + message.content + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)
_MISTRAL = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "{% if message.role == 'system' %}{{ '[INST] ' + message.content + '\\n\\n' }}"
    "{% elif message.role == 'assistant' %}{{ message.content + (eos_token or '') }}"
    "{% else %}"
    "{% if loop.first or messages[loop.index0 - 1].role != 'system' %}{{ '[INST] ' }}"
    "{% endif %}{{ message.content + ' [/INST]' }}"
    "{% endif %}"
    "{% endfor %}"
)
_GEMMA = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "{% if message.role == 'system' %}{{ '<start_of_turn>user\\n' + message.content + '\\n\\n' }}"
    "{% elif message.role == 'assistant' %}"
    "{{ '<start_of_turn>model\\n' + message.content + '<end_of_turn>\\n' }}"
    "{% else %}"
    "{% if loop.first or messages[loop.index0 - 1].role != 'system' %}"
    "{{ '<start_of_turn>user\\n' }}{% endif %}{{ message.content + '<end_of_turn>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
_PHI3 = (
    "{% for message in messages %}"
    "{{ '<|' + message.role + '|>\\n' + message.content + '<|end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
_ALPACA = (
    "{% for message in messages %}"
    "{% if message.role == 'system' %}{{ message.content + '\\n\\n' }}"
    "{% elif message.role == 'user' %}{{ '### Instruction:\\n' + message.content + '\\n\\n' }}"
    "{% elif message.role == 'assistant' %}"
    "{{ '### Response:\\n' + message.content + (eos_token or '') + '\\n\\n' }}"
    "{% else %}{{ '### Input:\\n' + message.content + '\\n\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class ChatTemplatePreset:
    name: str
    template: str
    markers: tuple[str, ...]  # special tokens it relies on; () for plain text
    stop: str | None  # the end-of-turn token that ends a reply, when not the tokenizer's EOS


PRESETS: dict[str, ChatTemplatePreset] = {
    preset.name: preset
    for preset in (
        ChatTemplatePreset("chatml", _CHATML, ("<|im_start|>", "<|im_end|>"), "<|im_end|>"),
        ChatTemplatePreset("qwen", _CHATML, ("<|im_start|>", "<|im_end|>"), "<|im_end|>"),
        ChatTemplatePreset("llama3", _LLAMA3, ("<|start_header_id|>", "<|eot_id|>"), "<|eot_id|>"),
        ChatTemplatePreset("mistral", _MISTRAL, (), None),
        ChatTemplatePreset("gemma", _GEMMA, ("<start_of_turn>", "<end_of_turn>"), "<end_of_turn>"),
        ChatTemplatePreset("phi3", _PHI3, ("<|user|>", "<|end|>"), "<|end|>"),
        ChatTemplatePreset("alpaca", _ALPACA, (), None),
    )
}
# The automatic choice: the first preset whose markers are all single tokens of the vocabulary.
_AUTO_ORDER = ("llama3", "gemma", "chatml", "phi3")
STOP_MARKERS = tuple(sorted({p.stop for p in PRESETS.values() if p.stop}))


def _in_vocabulary(tokenizer: Any, marker: str) -> bool:
    return marker in tokenizer.get_vocab()


def choose_chat_template(tokenizer: Any, preset: str) -> tuple[str | None, str | None]:
    """(template to set or None to keep the tokenizer's, note for the log or None)."""
    if preset == "none":
        return None, None
    if preset != "auto":
        chosen = PRESETS[preset]
        missing = [m for m in chosen.markers if not _in_vocabulary(tokenizer, m)]
        note = f"chat template: the '{preset}' preset (model.chat_template_preset)"
        if missing:
            note += (
                f"; its markers {', '.join(missing)} are not tokens of this vocabulary, so "
                "they are spelled out in several tokens (the alpaca preset needs none)"
            )
        return chosen.template, note
    if getattr(tokenizer, "chat_template", None):
        return None, None
    for name in _AUTO_ORDER:
        markers = PRESETS[name].markers
        if all(_in_vocabulary(tokenizer, marker) for marker in markers):
            return PRESETS[name].template, (
                f"chat template: the tokenizer has none, so the '{name}' preset is used (its "
                f"markers {', '.join(markers)} are tokens of this vocabulary); set "
                "model.chat_template_preset to choose another"
            )
    return PRESETS["alpaca"].template, (
        "chat template: the tokenizer has none and no chat markers, so the 'alpaca' preset "
        "is used (plain '### Instruction:' / '### Response:' text ending with the EOS "
        "token); set model.chat_template_preset to choose another"
    )


def stop_token_ids(tokenizer: Any) -> list[int]:
    """Ids of the end-of-turn markers the tokenizer's chat template uses (besides EOS)."""
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str):
        return []
    vocabulary = tokenizer.get_vocab()
    return [vocabulary[m] for m in STOP_MARKERS if m in template and m in vocabulary]
