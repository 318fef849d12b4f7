"""``model_randomization``: Adebayo et al.'s check that attributions change when the weights are shuffled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from aikit.errors import ConfigError, InputError
from aikit.measure.explain._faithfulness import _candidates
from aikit.measure.explain._registry import get_explainer
from aikit.measure.explain._run import _explain_one
from aikit.measure.explain._types import ExplainOptions, Explanation

if TYPE_CHECKING:
    from aikit.model.model import Model


# ---------------------------------------------------------------------- model randomisation
@dataclass(frozen=True, kw_only=True)
class RandomizationReport:
    """Model-randomisation check (Adebayo et al., 2018): attributions of the trained model against the
    same method's attributions, same inputs and targets, with every weight tensor shuffled.

    ``similarity`` is the mean Spearman rank correlation of the attributions' magnitudes
    (``|a|``, as in the paper) over the positions where either map is non-zero (where both are
    exactly 0, e.g. black pixels under a black baseline, the method says nothing about any model),
    ``signed_similarity`` the same on the signed values over every position, ``per_input`` each
    input's ``(similarity, signed_similarity)``. ``passed`` when ``similarity`` is below
    ``max_similarity``: the explanation depends on what the model learned.
    """

    method: str
    similarity: float
    signed_similarity: float
    max_similarity: float
    passed: bool
    per_input: tuple[tuple[float, float], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "similarity": self.similarity,
            "signed_similarity": self.signed_similarity,
            "max_similarity": self.max_similarity,
            "passed": self.passed,
            "per_input": [list(p) for p in self.per_input],
        }


def _ranks(values: NDArray[Any]) -> NDArray[np.float64]:
    """Ranks with ties averaged (as ``scipy.stats.rankdata``)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.shape[0], dtype=np.float64)
    ranks[order] = np.arange(values.shape[0], dtype=np.float64)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse.reshape(-1), weights=ranks)
    averaged: NDArray[np.float64] = (sums / counts)[inverse.reshape(-1)]
    return averaged


def rank_correlation(a: NDArray[Any], b: NDArray[Any]) -> float:
    """Spearman's rank correlation of two equally long score vectors.

    Identical vectors give 1.0 even when constant; a constant vector against a varying one gives
    0.0 (no shared ranking), where the textbook formula is undefined.
    """
    x, y = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ConfigError(f"cannot correlate attributions of shapes {x.shape} and {y.shape}")
    if np.array_equal(x, y):
        return 1.0
    rx, ry = _ranks(x), _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def randomized_model(model: Model, *, seed: int = 0) -> Model:
    """A copy of ``model`` whose every floating-point weight tensor has its entries shuffled.

    Shuffling keeps each tensor's values (so activations keep their scale, unlike a fresh
    initialisation that may saturate) and destroys what training put where. Needs a backend
    holding a torch module (torch, keras, cuda); ``model`` is untouched.
    """
    import copy

    import torch

    from aikit.model.model import Model as _Model

    module = model.backend.torch_module()
    if module is None:
        raise ConfigError(
            f"the model-randomisation check shuffles a torch module's weights; backend {model.backend.name!r} holds "
            "none: run it on the torch or keras model (the explanation method is the same)"
        )
    clone = copy.deepcopy(module)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in clone.parameters():
            if param.is_floating_point() and param.numel() > 1:
                flat = param.detach().reshape(-1)
                param.copy_(flat[torch.randperm(flat.numel(), generator=generator)].reshape(param.shape))
    return _Model(task=type(model.task)(model.parts), backend=model.backend.with_module(clone), parts=model.parts)


def model_randomization(
    model: Model,
    explanations: Sequence[Explanation],
    *,
    max_similarity: float = 0.7,
    seed: int = 0,
    **options: Any,
) -> RandomizationReport:
    """Adebayo et al.'s model-randomisation sanity check for ``explanations`` of ``model``.

    Each explanation is recomputed with its own method and target on ``randomized_model(model)``
    (``options``: ``ExplainOptions`` fields, as given to ``explain``); the two attribution maps are
    compared by Spearman rank correlation of their magnitudes (``RandomizationReport``; special
    tokens excluded). Passes when the mean correlation is below ``max_similarity``. The default
    0.7 sits between a map that ignores the weights (1.0: an explainer returning the input scores
    exactly that) and one that keeps the input's outline but re-ranks within it (integrated
    gradients and occlusion on a digits CNN score about 0.5: ink matters to any model; see
    docs/how-to/explain.md for measured values). Classifier explanations only; one method per call.
    """
    if not explanations:
        raise InputError("model_randomization needs at least one explanation")
    methods = {e.method for e in explanations}
    if len(methods) != 1:
        raise ConfigError(f"model_randomization checks one method at a time; got {sorted(methods)}")
    if any(e.kind == "pair" for e in explanations):
        raise ConfigError("model_randomization checks classifier explanations; pair explanations are not supported")
    if not 0 < max_similarity <= 1:
        raise ConfigError(f"max_similarity must be in (0, 1], got {max_similarity!r}")
    method = methods.pop()
    opts = ExplainOptions(**options) if options else ExplainOptions()
    shuffled = randomized_model(model, seed=seed)
    explainer = get_explainer(method)()
    kind = model.task.explain_input
    if kind not in ("text", "image"):
        raise ConfigError(f"model_randomization supports classifiers; this model does {model.task.name!r}")
    from aikit.contracts.task import Example

    pairs: list[tuple[float, float]] = []
    with model._lock, shuffled._lock:
        for e in explanations:
            example = Example(index=0, length=0, features={k: np.array(v) for k, v in e.features.items()})
            again = _explain_one(shuffled, explainer, method, kind, example, e.target_index, opts)
            positions = _candidates(e)
            before = e.attributions.reshape(-1)[positions]
            after = again.attributions.reshape(-1)[positions]
            informative = (before != 0) | (after != 0)
            magnitude = rank_correlation(np.abs(before[informative]), np.abs(after[informative]))
            pairs.append((magnitude, rank_correlation(before, after)))
    similarity = float(np.mean([p[0] for p in pairs]))
    return RandomizationReport(
        method=method,
        similarity=similarity,
        signed_similarity=float(np.mean([p[1] for p in pairs])),
        max_similarity=max_similarity,
        passed=similarity < max_similarity,
        per_input=tuple(pairs),
    )
