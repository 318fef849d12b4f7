"""``PredictCall``: the mutable object that flows through the ``aikit_predict`` hook."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model import Model

__all__ = ["PredictCall"]


@dataclass(kw_only=True)
class PredictCall:
    """One ``Model.predict`` call as middleware sees it.

    ``inputs`` is always a list (a single input is wrapped); wrappers may replace it or its
    items before yielding. ``options`` is the task's options object (or None). ``batch_size``,
    ``max_length`` and ``progress`` are the batching settings. ``extra`` is free space for
    middleware to pass data to one another.
    """

    model: Model
    inputs: list[Any]
    options: Any = None
    batch_size: int | None = None
    max_length: int | None = None
    progress: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)
