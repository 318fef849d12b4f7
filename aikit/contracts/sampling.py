"""What ``GenerationOptions``' token-choice fields mean, implemented once for every decoding loop.

Each backend runs its own loop (a KV cache lives in the runtime), but the choice of the next
token from a row of logits is the same everywhere: greedy argmax, the repetition penalty, and
sampling with temperature, top-k and top-p. Backends call ``select_next`` so that the same seed
gives the same tokens wherever the logits agree, and a new backend inherits the exact semantics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from aikit.contracts.options import GenerationOptions

__all__ = ["is_plain_greedy", "new_rng", "select_next"]


def new_rng(options: GenerationOptions) -> np.random.Generator:
    """The generator a decoding run samples with: seeded by ``options.seed``, else fresh entropy."""
    return np.random.default_rng(options.seed)


def is_plain_greedy(options: GenerationOptions) -> bool:
    """True when the next token is the argmax of the raw logits (no sampling, no repetition penalty),
    so a loop may take it on the device or inside the graph instead of calling ``select_next``."""
    return not options.do_sample and options.repetition_penalty in (None, 1.0)


def select_next(
    logits: NDArray[Any], history: Sequence[Sequence[int]], options: GenerationOptions, rng: np.random.Generator
) -> NDArray[np.int64]:
    """One token id per row of ``(batch, vocab)`` logits; ``history`` holds each row's tokens so far.

    - The repetition penalty divides positive (multiplies negative) logits of every token already
      in the row's history (the CTRL paper's rule, as transformers applies it).
    - Greedy (``do_sample=False``): the first index of the maximum.
    - Sampling: logits / temperature, then top-k, then top-p (the most likely token always stays),
      then one draw from ``rng``.
    """
    if options.repetition_penalty is not None and options.repetition_penalty != 1.0:
        logits = np.array(logits, dtype=np.float32, copy=True)
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
