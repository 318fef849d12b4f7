"""Recipe: a metric plugin. ``word_f1`` scores generated answers against references, SQuAD-style.

Register it from any plugin module; ``aikit.get_metric("word_f1")`` then finds it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from aikit import InputError, hookimpl


# --8<-- [start:metric]
def word_f1(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean F1 of the words each prediction shares with its reference (case-insensitive)."""
    if len(predictions) != len(references) or not predictions:
        raise InputError(f"need equally many predictions and references, got {len(predictions)} and {len(references)}")
    total = 0.0
    for prediction, reference in zip(predictions, references, strict=True):
        said, wanted = Counter(prediction.lower().split()), Counter(reference.lower().split())
        common = sum((said & wanted).values())
        if common:
            precision, recall = common / sum(said.values()), common / sum(wanted.values())
            total += 2 * precision * recall / (precision + recall)
    return total / len(predictions)


@hookimpl
def aikit_register_metrics(register: Callable[..., None]) -> None:
    register("word_f1", word_f1)


# --8<-- [end:metric]
