"""Typed results returned by ``Model.predict``, one per input item.

Every result is a frozen dataclass with a ``to_dict()`` that gives plain JSON types, which is
what the CLI's ``--json`` and the HTTP service send.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Classification", "Embedding", "Entity", "Generation", "Result", "TokenTags"]


@dataclass(frozen=True, slots=True)
class Embedding:
    """A sentence (or image) embedding: a 1-D float32 vector."""

    vector: NDArray[np.float32]

    def to_dict(self) -> dict[str, Any]:
        return {"embedding": self.vector.tolist()}

    def __len__(self) -> int:
        return int(self.vector.shape[0])


@dataclass(frozen=True, slots=True)
class Classification:
    """The top label, its probability, and the probability of every label."""

    label: str
    score: float
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": self.score, "scores": dict(self.scores)}


@dataclass(frozen=True, slots=True)
class Entity:
    """One tagged span of the input text (character offsets into the original string)."""

    word: str
    label: str
    score: float
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return {"word": self.word, "label": self.label, "score": self.score, "start": self.start, "end": self.end}


@dataclass(frozen=True, slots=True)
class TokenTags:
    """Token classification of one text: the non-"O" entities, adjacent tokens merged."""

    entities: tuple[Entity, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"entities": [e.to_dict() for e in self.entities]}


@dataclass(frozen=True, slots=True)
class Generation:
    """Generated text (prompt excluded), its token ids, and why generation stopped."""

    text: str
    token_ids: tuple[int, ...]
    finish_reason: str  # "stop" (end-of-sequence or stop string) or "length" (max_new_tokens)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "token_ids": list(self.token_ids), "finish_reason": self.finish_reason}


Result = Embedding | Classification | TokenTags | Generation
