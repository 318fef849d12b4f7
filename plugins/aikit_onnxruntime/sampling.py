"""Choosing the next token from logits in numpy: greedy, or sampled with temperature / top-k / top-p.

Mirrors ``aikit_torch.decoding.select_next`` (same greedy argmax and repetition penalty, so
greedy output matches the torch backend token for token when the logits do).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from aikit.contracts.options import GenerationOptions

__all__ = ["select_next"]


def select_next(
    logits: NDArray[np.float32], history: list[list[int]], options: GenerationOptions, rng: np.random.Generator
) -> NDArray[np.int64]:
    """One token id per row of ``(batch, vocab)`` logits; ``history`` holds each row's tokens so far."""
    if options.repetition_penalty is not None and options.repetition_penalty != 1.0:
        logits = logits.astype(np.float32, copy=True)
        for row, seen in enumerate(history):
            ids = np.unique(np.asarray(seen, dtype=np.int64))
            values = logits[row, ids]
            logits[row, ids] = np.where(
                values < 0, values * options.repetition_penalty, values / options.repetition_penalty
            )
    if not options.do_sample:
        chosen: NDArray[np.int64] = np.argmax(logits, axis=-1).astype(np.int64)
        return chosen
    return np.asarray([_sample(row, options, rng) for row in logits], dtype=np.int64)


def _sample(logits: NDArray[Any], options: GenerationOptions, rng: np.random.Generator) -> int:
    x = logits.astype(np.float64) / options.temperature
    if options.top_k is not None:
        k = min(options.top_k, x.shape[-1])
        kth = np.partition(x, -k)[-k]
        x = np.where(x < kth, -np.inf, x)
    p = np.exp(x - x.max())
    p /= p.sum()
    if options.top_p is not None and options.top_p < 1.0:
        order = np.argsort(-p)
        before = np.cumsum(p[order]) - p[order]
        p[order[before >= options.top_p]] = 0.0  # the most likely token always stays
        p /= p.sum()
    return int(rng.choice(p.shape[0], p=p))
