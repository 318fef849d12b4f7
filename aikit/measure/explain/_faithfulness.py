"""``faithfulness``: do the top-attributed tokens or pixels matter more than random ones?"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from aikit.errors import ConfigError, InputError
from aikit.measure.explain._run import target_probabilities
from aikit.measure.explain._types import Explanation, FaithfulnessReport

if TYPE_CHECKING:
    from aikit.model.model import Model


# ---------------------------------------------------------------------- faithfulness
def _ranked(explanation: Explanation) -> list[int]:
    """Feature positions (flat, for images and pairs) by attribution, highest first (special tokens excluded)."""
    scores = explanation.attributions.reshape(-1)
    order = np.argsort(-scores, kind="stable")
    if explanation.kind == "text" and explanation.special:
        return [int(i) for i in order if not explanation.special[i]]
    if explanation.kind == "pair":
        cols = len(explanation.tokens_b)
        special_a = explanation.special or (False,) * len(explanation.tokens)
        special_b = explanation.special_b or (False,) * cols
        return [int(i) for i in order if not (special_a[i // cols] or special_b[i % cols])]
    return [int(i) for i in order]


def _candidates(explanation: Explanation) -> list[int]:
    if explanation.kind == "text":
        return [i for i in range(len(explanation.tokens)) if not (explanation.special and explanation.special[i])]
    return list(range(explanation.attributions.size))


def _without(explanation: Explanation, positions: Sequence[int]) -> dict[str, NDArray[Any]]:
    """The explained input with ``positions`` deleted (tokens) or set to 0 in every channel (pixels)."""
    if explanation.kind == "text":
        keep = np.ones(len(explanation.tokens), dtype=bool)
        keep[list(positions)] = False
        return {
            k: (v[keep] if v.ndim == 1 and v.shape[0] == keep.shape[0] else v) for k, v in explanation.features.items()
        }
    pixels = np.array(explanation.features["pixel_values"])
    height, width = pixels.shape[1:]
    rows, cols = np.unravel_index(np.asarray(positions, dtype=np.int64), (height, width))
    pixels[:, rows, cols] = 0.0
    return {**explanation.features, "pixel_values": pixels}


def faithfulness(
    model: Model,
    explanations: Sequence[Explanation],
    *,
    k: int | None = None,
    fraction: float = 0.2,
    trials: int = 8,
    margin: float = 0.02,
    seed: int = 0,
) -> FaithfulnessReport:
    """Deletion test: do the top-attributed features matter more than random ones?

    For each explanation, the ``k`` top-attributed tokens are deleted (pixels set to 0) and the
    drop of the target's probability is compared with the mean drop for ``trials`` random sets of
    ``k`` (same candidates: special tokens are never deleted). ``k`` defaults to ``fraction`` of
    each input's candidates (at least 1). Passes when the mean top-k drop exceeds the mean random
    drop by more than ``margin`` (probability points: 0.02 keeps a random attribution's chance
    agreement from passing). Runs through ``backend.forward`` (any backend).
    """
    if not explanations:
        raise InputError("faithfulness needs at least one explanation")
    if any(e.kind == "pair" for e in explanations):
        raise ConfigError("faithfulness checks classifier explanations; pair explanations are not supported")
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction!r}")
    if trials < 1:
        raise ConfigError(f"trials must be a positive integer, got {trials!r}")
    rng = np.random.default_rng(seed)
    pairs: list[tuple[float, float]] = []
    used_k = 0
    with model._lock:
        for ex in explanations:
            candidates = _candidates(ex)
            count = min(len(candidates), k if k is not None else max(1, math.ceil(fraction * len(candidates))))
            if count < 1:
                continue
            used_k = max(used_k, count)
            variants = [_without(ex, _ranked(ex)[:count])]
            variants += [
                _without(ex, rng.choice(candidates, size=count, replace=False).tolist()) for _ in range(trials)
            ]
            probs = target_probabilities(model, [ex.features, *variants])[:, ex.target_index]
            drops = probs[0] - probs[1:]
            pairs.append((float(drops[0]), float(drops[1:].mean())))
    if not pairs:
        raise InputError("none of the explanations has a feature to delete")
    top = float(np.mean([p[0] for p in pairs]))
    rand = float(np.mean([p[1] for p in pairs]))
    return FaithfulnessReport(
        k=used_k, top_k_drop=top, random_drop=rand, margin=margin, passed=top - rand > margin, per_input=tuple(pairs)
    )
