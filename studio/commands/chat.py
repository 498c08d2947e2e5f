"""`ftstudio chat TARGET`: talk to a run's adapter, a checkpoint or a base model in the terminal.

With `--prompt` it answers once and exits (only the answer goes to stdout, so it scripts);
without, a small REPL on stdin. Loading messages go to stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from collections.abc import Sequence

    from studio.chat import ChatModel
    from studio.chat.settings import GenerationSettings, HistoryItem

REPL_HELP = (
    "commands: /reset (new conversation), /compare (toggle base vs. adapter), "
    "/quit; Ctrl-C stops a reply, Ctrl-D quits"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="chat with a run's adapter, a checkpoint, or a base model",
        description="Chat with what a run trained. TARGET is a run folder, its adapter/ or a "
        "checkpoints/checkpoint-N folder, any adapter folder, a model folder or 'tiny-demo'.",
    )
    parser.add_argument("target", nargs="?", help="run, adapter, checkpoint or model folder")
    parser.add_argument(
        "--checkpoint", metavar="STEP", help="a checkpoint of the run: its step, or 'latest'"
    )
    parser.add_argument(
        "--model", metavar="SOURCE", help="base model to use instead of the one TARGET names"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--base", action="store_true", help="the base model alone, no adapter")
    mode.add_argument(
        "--compare", action="store_true", help="answer with the base model and with the adapter"
    )
    parser.add_argument("--prompt", metavar="TEXT", help="answer this once and exit")
    parser.add_argument(
        "--completion",
        action="store_true",
        help="plain completion: continue the text as written, no chat template (for base "
        "models and continued pre-training)",
    )
    parser.add_argument("--system", metavar="TEXT", default="", help="system prompt")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default)")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--repetition-penalty", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from studio.chat.settings import generation_settings
    from studio.chat.targets import base_target, resolve_target
    from studio.errors import ModelError

    settings = generation_settings(
        {
            "system_prompt": args.system,
            "temperature": args.temperature,
            "top_p": args.top_p,
            "top_k": args.top_k,
            "max_new_tokens": args.max_new_tokens,
            "repetition_penalty": args.repetition_penalty,
            "seed": args.seed,
            "completion": args.completion,
        }
    )
    if args.target is None:
        if not args.model:
            raise ModelError(
                "nothing to chat with",
                advice="name a run folder, an adapter folder, or a model with --model",
            )
        target = base_target(args.model)
    else:
        target = resolve_target(
            args.target, checkpoint=args.checkpoint, model_source=args.model, base=args.base
        )
    if args.compare and not target.has_adapter:
        raise ModelError(
            f"--compare needs an adapter, and {target.label} has none",
            advice="point at a run, a checkpoint or an adapter folder",
        )

    from studio.chat.model import ChatModel

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    chat = ChatModel.load(target, device=args.device, on_progress=progress)
    if args.prompt is not None:
        answer_once(chat, args.prompt, settings, compare=args.compare, out=sys.stdout)
        return 0
    return repl(chat, settings, compare=args.compare)


def answer_once(
    chat: ChatModel, prompt: str, settings: GenerationSettings, *, compare: bool, out: TextIO
) -> None:
    """Stream one answer to `out`; with compare, both answers under a label each."""
    if not compare:
        _print_stream(chat.stream([], prompt, settings), out)
        return
    for side, label in (("base", "[base model]"), ("adapter", "[adapter]")):
        out.write(f"{label}\n")
        _print_stream(chat.stream([], prompt, settings, use_adapter=side == "adapter"), out)


def repl(chat: ChatModel, settings: GenerationSettings, *, compare: bool) -> int:
    from studio.chat.settings import ChatMessage

    what = "completing text with" if settings.completion else "chatting with"
    print(f"{what} {chat.target.label} on {chat.device}; {REPL_HELP}", file=sys.stderr)
    history: list[ChatMessage] = []
    while True:
        try:
            line = input("you> ")
        except EOFError:
            print(file=sys.stderr)
            return 0
        except KeyboardInterrupt:
            print(file=sys.stderr)
            return 0
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            return 0
        if text == "/reset":
            history.clear()
            print("(new conversation)", file=sys.stderr)
            continue
        if text == "/compare":
            if not chat.has_adapter:
                print("(compare needs an adapter; this is the base model alone)", file=sys.stderr)
                continue
            compare = not compare
            print(f"(compare {'on' if compare else 'off'})", file=sys.stderr)
            continue
        if text.startswith("/"):
            print(f"(unknown command {text}; {REPL_HELP})", file=sys.stderr)
            continue
        if compare:
            sys.stdout.write("[base model]\n")
            _stream_interruptibly(chat, history, text, settings, use_adapter=False)
            sys.stdout.write("[adapter]\n")
        answer = _stream_interruptibly(chat, history, text, settings, use_adapter=True)
        if not settings.completion:  # each completion starts from its own text alone
            history += [ChatMessage("user", text), ChatMessage("assistant", answer)]


def _stream_interruptibly(
    chat: ChatModel,
    history: Sequence[HistoryItem],
    text: str,
    settings: GenerationSettings,
    *,
    use_adapter: bool,
) -> str:
    """Stream a reply to stdout; Ctrl-C stops the reply, not the chat."""
    pieces: list[str] = []
    stream = chat.stream(history, text, settings, use_adapter=use_adapter)
    try:
        for piece in stream:
            pieces.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
    except KeyboardInterrupt:
        stream.close()  # stops generation and waits for it
        sys.stdout.write(" [stopped]")
    sys.stdout.write("\n")
    sys.stdout.flush()
    return "".join(pieces)


def _print_stream(pieces: Any, out: TextIO) -> None:
    for piece in pieces:
        out.write(piece)
        out.flush()
    out.write("\n")
    out.flush()
