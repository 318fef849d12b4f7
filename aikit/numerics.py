"""The measures every layer compares outputs with, in one place (numpy only, no aikit imports).

- ``cosine_rows``: row-wise cosine similarity (embeddings against a baseline, the accuracy guard,
  the ``cosine_agreement`` metric);
- ``token_nll``: per-position negative log-likelihood of the next token (perplexity in
  ``evaluate``, the accuracy guard for language models).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["cosine_rows", "token_nll"]


def cosine_rows(a: NDArray[Any], b: NDArray[Any]) -> NDArray[Any]:
    """Cosine similarity of each pair of rows along the last axis (zero vectors give 0, not NaN)."""
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return num / np.clip(den, 1e-12, None)  # type: ignore[no-any-return]


def token_nll(logits: NDArray[Any], targets: NDArray[Any]) -> NDArray[Any]:
    """``-log softmax(logits)[target]`` at every position, computed stably (max subtracted first).

    ``logits`` is ``(..., vocab)``, ``targets`` the matching ``(...)`` integer ids; the result keeps
    ``logits``' float dtype, so pass float64 logits for float64 losses.
    """
    peak = logits.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(logits - peak).sum(axis=-1)) + peak[..., 0]
    picked = np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return log_norm - picked  # type: ignore[no-any-return]
