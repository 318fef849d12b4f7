"""The core's own hook implementations: the innermost ``aikit_predict`` that does the work."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from aikit.contracts.batching import run_batches
from aikit.contracts.hookspecs import hookimpl
from aikit.contracts.predict_call import PredictCall
from aikit.contracts.results import Generation
from aikit.errors import ConfigError
from aikit.numerics import token_nll

if TYPE_CHECKING:
    from aikit.model.model import Model


@hookimpl(trylast=True)
def aikit_predict(call: PredictCall) -> list[Any]:
    model = call.model
    task = model.task
    if call.purpose == "token_losses":
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


def score_tokens(model: Model, texts: Sequence[str], *, batch_size: int = 8) -> list[NDArray[np.float64]]:
    """Per-token losses of each text under ``model``: ``aikit.measure.evaluate.token_losses`` minus the middleware."""
    if not model.task.generative:
        raise ConfigError(
            f"perplexity needs a causal language model (a generative task); this one does {model.task.name!r}"
        )
    tokenizer = model.parts.tokenizer
    if tokenizer is None:
        raise ConfigError("perplexity needs the model's tokenizer, and this model has none")
    limit = getattr(model.parts.config, "max_position_embeddings", None) or 2048
    encoded = [list(tokenizer(str(t))["input_ids"])[:limit] for t in texts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: list[NDArray[np.float64]] = []
    for start in range(0, len(encoded), batch_size):
        batch = encoded[start : start + batch_size]
        width = max(len(ids) for ids in batch)
        input_ids = np.full((len(batch), width), pad, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)], mask[row, : len(ids)] = ids, 1
        with model._lock:  # same serialisation as predict: runtimes are not re-entrant
            logits = model.backend.forward({"input_ids": input_ids, "attention_mask": mask})["logits"]
        for row, ids in enumerate(batch):
            scores = logits[row, : len(ids) - 1].astype(np.float64)
            out.append(token_nll(scores, np.asarray(ids[1:], dtype=np.int64)))
    return out
