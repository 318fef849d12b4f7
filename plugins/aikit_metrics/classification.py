"""Label metrics: accuracy, precision, recall, F1 (macro and per class), confusion matrix.

Each takes ``(predictions, references)``, two equally long sequences of hashable labels, and
agrees with scikit-learn's function of the same name (``average="macro"``, ``zero_division=0``):
the classes are the sorted union of both sequences, and a class never predicted (or never
present) scores 0 rather than raising.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from aikit.errors import InputError

__all__ = ["accuracy", "class_labels", "confusion_matrix", "f1", "precision", "recall"]


def _check(predictions: Sequence[Any], references: Sequence[Any]) -> None:
    if len(predictions) != len(references):
        raise InputError(f"{len(predictions)} predictions but {len(references)} references; they must pair up")
    if not predictions:
        raise InputError("no predictions to score: the dataset is empty")


def class_labels(predictions: Sequence[Hashable], references: Sequence[Hashable]) -> list[Any]:
    """The classes scored: the sorted union of references and predictions (scikit-learn's order)."""
    union = set(references) | set(predictions)
    try:
        return sorted(union)
    except TypeError:  # mixed types (e.g. 1 and "1") still get a stable order
        return sorted(union, key=repr)


def _matrix(predictions: Sequence[Hashable], references: Sequence[Hashable]) -> tuple[list[Any], NDArray[np.int64]]:
    _check(predictions, references)
    labels = class_labels(predictions, references)
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for p, r in zip(predictions, references, strict=True):
        matrix[index[r], index[p]] += 1
    return labels, matrix


def _safe_divide(num: NDArray[np.float64], den: NDArray[np.float64]) -> NDArray[np.float64]:
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _per_class(predictions: Sequence[Hashable], references: Sequence[Hashable], which: str) -> dict[str, Any]:
    labels, m = _matrix(predictions, references)
    tp = np.diag(m).astype(np.float64)
    predicted = m.sum(axis=0).astype(np.float64)
    actual = m.sum(axis=1).astype(np.float64)
    if which == "precision":
        values = _safe_divide(tp, predicted)
    elif which == "recall":
        values = _safe_divide(tp, actual)
    else:  # F1 = 2tp / (2tp + fp + fn), scikit-learn's formulation (0 when undefined)
        values = _safe_divide(2 * tp, predicted + actual)
    return {"macro": float(values.mean()), "per_class": {str(label): float(v) for label, v in zip(labels, values)}}


def accuracy(predictions: Sequence[Hashable], references: Sequence[Hashable]) -> float:
    """The fraction of predictions equal to their reference."""
    _check(predictions, references)
    return sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references)


def precision(predictions: Sequence[Hashable], references: Sequence[Hashable]) -> dict[str, Any]:
    """``{"macro": float, "per_class": {label: float}}``: tp / (tp + fp) per class."""
    return _per_class(predictions, references, "precision")


def recall(predictions: Sequence[Hashable], references: Sequence[Hashable]) -> dict[str, Any]:
    """``{"macro": float, "per_class": {label: float}}``: tp / (tp + fn) per class."""
    return _per_class(predictions, references, "recall")


def f1(predictions: Sequence[Hashable], references: Sequence[Hashable]) -> dict[str, Any]:
    """``{"macro": float, "per_class": {label: float}}``: the harmonic mean of precision and recall."""
    return _per_class(predictions, references, "f1")


def confusion_matrix(predictions: Sequence[Hashable], references: Sequence[Hashable]) -> dict[str, Any]:
    """``{"labels": [...], "matrix": [[int]]}``: rows are references, columns predictions."""
    labels, m = _matrix(predictions, references)
    return {"labels": [str(label) for label in labels], "matrix": m.tolist()}
