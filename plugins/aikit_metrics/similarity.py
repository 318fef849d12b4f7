"""Metrics that compare model outputs beyond labels: embedding agreement, perplexity, exact match.

``cosine_agreement`` and ``perplexity`` consume what ``aikit.measure.evaluate`` computes for them
(their ``needs`` attribute says what): embeddings from the model and a reference model, and
per-token negative log-likelihoods.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from aikit.errors import InputError
from aikit.numerics import cosine_rows

__all__ = ["cosine_agreement", "exact_match", "perplexity"]


def exact_match(predictions: Sequence[Any], references: Sequence[Any]) -> float:
    """The fraction of generated texts equal to their reference, ignoring surrounding whitespace."""
    if len(predictions) != len(references):
        raise InputError(f"{len(predictions)} predictions but {len(references)} references; they must pair up")
    if not predictions:
        raise InputError("no predictions to score: the dataset is empty")
    return sum(str(p).strip() == str(r).strip() for p, r in zip(predictions, references, strict=True)) / len(
        predictions
    )


def cosine_agreement(predictions: NDArray[np.float32], references: NDArray[np.float32]) -> dict[str, float]:
    """Row-wise cosine similarity between two ``(n, dim)`` embedding matrices: mean, min and 5th percentile.

    1.0 means the model embeds every text exactly like the reference model (up to scale).
    """
    a = np.asarray(predictions, dtype=np.float64)
    b = np.asarray(references, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] == 0:
        raise InputError(
            f"cosine agreement needs two equally shaped, non-empty (n, dim) matrices; got {a.shape} and {b.shape}"
        )
    cos = cosine_rows(a, b)
    return {"mean": float(cos.mean()), "min": float(cos.min()), "p05": float(np.percentile(cos, 5))}


def perplexity(predictions: Sequence[NDArray[np.float64]], references: Any = None) -> float:
    """exp of the mean negative log-likelihood over every predicted token of every text.

    ``predictions`` holds one array of per-token NLLs (natural log) per text.
    """
    total = sum(float(np.sum(x)) for x in predictions)
    count = sum(int(np.size(x)) for x in predictions)
    if count == 0:
        raise InputError("perplexity needs texts of at least two tokens; none were given")
    return math.exp(total / count)


cosine_agreement.needs = "vectors"  # type: ignore[attr-defined]
perplexity.needs = "token_losses"  # type: ignore[attr-defined]
