"""The core's own hook implementations: the innermost ``aikit_predict`` that does the work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .batching import run_batches
from .errors import ConfigError
from .hookspecs import hookimpl
from .predict_call import PredictCall
from .results import Generation


@hookimpl(trylast=True)
def aikit_predict(call: PredictCall) -> list[Any]:
    model = call.model
    task = model.task
    if call.purpose == "token_losses":
        from .evaluate import score_tokens

        return list(score_tokens(model, call.inputs, batch_size=call.batch_size or 8))
    if call.on_text is not None:
        if call.runner is not None:
            if len(call.inputs) != 1:
                raise ConfigError(f"a streamed call takes one prompt; middleware left {len(call.inputs)} inputs")
            return [call.runner.run(call)]
        return [_stream(call, call.on_text)]
    with model._lock:  # tokenizers and some runtimes are not safe for concurrent calls
        return run_batches(
            task,
            model.backend,
            call.inputs,
            options=call.options,
            batch_size=call.batch_size or task.batch_size,
            max_length=call.max_length,
            progress=call.progress,
        )


def _stream(call: PredictCall, on_text: Callable[[str], None]) -> Generation:
    """Send each decoded piece of the one prompt to ``on_text``; the ``Generation`` they make up.

    ``Task.stream`` yields text only, so ``token_ids`` are the generated text encoded again
    (without special tokens) and ``finish_reason`` is ``"length"`` when they fill
    ``max_new_tokens``: what a client could count from the text it received.
    """
    model = call.model
    if len(call.inputs) != 1:
        raise ConfigError(f"a streamed call takes one prompt; middleware left {len(call.inputs)} inputs")
    examples = model.task.preprocess(call.inputs, max_length=call.max_length)
    pieces: list[str] = []
    with model._lock:  # tokenizers and some runtimes are not safe for concurrent calls
        for piece in model.task.stream(model.backend, examples[0], call.options):
            pieces.append(piece)
            on_text(piece)
        text = "".join(pieces)
        tokenizer = model.parts.tokenizer
        ids = tuple(tokenizer(text, add_special_tokens=False)["input_ids"]) if tokenizer is not None and text else ()
    limit = getattr(call.options, "max_new_tokens", None)
    finish = "length" if isinstance(limit, int) and len(ids) >= limit else "stop"
    return Generation(text=text, token_ids=ids, finish_reason=finish)
