"""``fastest_batch_size``: which batch size runs a model's forward fastest on this machine, measured.

Smaller batches can be faster on a CPU (on one 2-core Xeon, int8 MiniLM ran 1.33x faster at
batch 8 than at 32: a layer's activations stay in cache, and length-sorted small batches carry
less padding), so neither ``optimize`` nor the server assumes the answer: both time it here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aikit.model.model import Model

__all__ = ["candidate_sizes", "fastest_batch_size"]


def candidate_sizes(largest: int) -> list[int]:
    """``largest``, ``largest / 2`` and ``largest / 4`` (at least 1, no repeats), ascending."""
    return sorted({max(1, largest // 4), max(1, largest // 2), largest})


def fastest_batch_size(
    model: Model, items: Sequence[Any], sizes: Sequence[int], *, rounds: int = 3
) -> tuple[int, dict[int, float]] | None:
    """The size in ``sizes`` whose length-sorted batches of ``items`` run fastest through the model's
    backend, and items per second for every size; None when there is nothing to choose between.

    Sizes are timed interleaved (alternating order each round, after one warm-up round), and each
    keeps its best of ``rounds``, so a burst of load on the machine hits all sizes alike.
    Text is cut as the quality measures cut it (``aikit.measure.quality.collate_batches``).
    """
    from aikit.measure.quality import collate_batches

    if len(set(sizes)) < 2 or not items:
        return None
    batches = {bs: collate_batches(model.task, items, bs) for bs in sorted(set(sizes))}
    best = dict.fromkeys(batches, math.inf)
    for r in range(rounds + 1):  # round 0 warms up
        for bs in sorted(batches) if r % 2 else sorted(batches, reverse=True):
            begin = time.perf_counter()
            for batch in batches[bs]:
                model.backend.forward(batch)
            if r:
                best[bs] = min(best[bs], time.perf_counter() - begin)
    rates = {bs: len(items) / t for bs, t in best.items()}
    return max(rates, key=lambda bs: rates[bs]), rates
