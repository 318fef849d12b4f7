"""``text-classification`` and ``token-classification``: labels with probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from typing_extensions import override

from aikit.contracts.parts import ModelParts
from aikit.contracts.results import Classification, Entity, TokenTags
from aikit.contracts.task import Example, Task

from ._text import TruncationNotice, as_text, encode_texts, model_limit, pad_id, softmax

# What evaluate() reports for a classifier when the caller names no metrics (text and images alike).
LABEL_METRICS = ("accuracy", "precision", "recall", "f1", "confusion_matrix")


def label_names(parts: ModelParts, count: int) -> list[str]:
    """Class names: explicit ``labels``, else the config's ``id2label``, else ``LABEL_i``."""
    if parts.labels:
        return list(parts.labels)
    id2label = getattr(parts.config, "id2label", None) or {}
    return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(count)]


def classify(probs: NDArray[np.float32], names: list[str]) -> Classification:
    best = int(np.argmax(probs))
    return Classification(
        label=names[best] if best < len(names) else f"LABEL_{best}",
        score=float(probs[best]),
        scores={(names[i] if i < len(names) else f"LABEL_{i}"): float(p) for i, p in enumerate(probs)},
    )


class _TextTask(Task):
    def __init__(self, parts: ModelParts) -> None:
        super().__init__(parts)
        self._notice = TruncationNotice()

    @override
    def pad_values(self) -> dict[str, int]:
        return {"input_ids": pad_id(self.parts.tokenizer)}


class TextClassification(_TextTask):
    """Text in, a label with its probability (and every label's) out.

    Multi-label models (``problem_type == "multi_label_classification"``) use a sigmoid per label.
    """

    name = "text-classification"
    default_metrics = LABEL_METRICS
    explain_input = "text"
    aliases = ("sentiment-analysis",)
    description = "one label per text, with scores"
    hf_auto_class = "AutoModelForSequenceClassification"
    architecture_suffixes = ("ForSequenceClassification",)

    @override
    def preprocess(self, items: Sequence[Any], *, max_length: int | None) -> list[Example]:
        texts = [as_text(item, i) for i, item in enumerate(items)]
        limit = model_limit(self.parts.tokenizer, self.parts.config, max_length)
        return encode_texts(self.parts.tokenizer, texts, limit=limit, notice=self._notice)

    @override
    def postprocess(self, outputs: dict[str, NDArray[Any]], examples: Sequence[Example], options: Any) -> list[Any]:
        logits = outputs["logits"].astype(np.float32)
        if getattr(self.parts.config, "problem_type", None) == "multi_label_classification":
            probs = 1.0 / (1.0 + np.exp(-logits))
        else:
            probs = softmax(logits)
        names = label_names(self.parts, logits.shape[-1])
        return [classify(p, names) for p in probs]

    @override
    def quality_outputs(self, outputs: dict[str, NDArray[Any]]) -> NDArray[Any]:
        return outputs["logits"]


class TokenClassification(_TextTask):
    """Text in, tagged spans out (named entities, parts of speech...).

    Tokens labelled ``O`` are dropped; adjacent tokens of one entity (``B-X`` then ``I-X``, or the
    same plain label) merge into one span whose score is the mean of theirs. ``start`` / ``end``
    are character offsets into the input string.
    """

    name = "token-classification"
    default_metrics = ("exact_match",)
    aliases = ("ner",)
    description = "labels per token, merged into entity spans"
    hf_auto_class = "AutoModelForTokenClassification"
    architecture_suffixes = ("ForTokenClassification",)

    @override
    def preprocess(self, items: Sequence[Any], *, max_length: int | None) -> list[Example]:
        texts = [as_text(item, i) for i, item in enumerate(items)]
        limit = model_limit(self.parts.tokenizer, self.parts.config, max_length)
        return encode_texts(self.parts.tokenizer, texts, limit=limit, notice=self._notice, offsets=True)

    @override
    def postprocess(self, outputs: dict[str, NDArray[Any]], examples: Sequence[Example], options: Any) -> list[Any]:
        probs_all = softmax(outputs["logits"].astype(np.float32))
        return [self._entities(probs_all[row], ex) for row, ex in enumerate(examples)]

    def _entities(self, probs: NDArray[np.float32], example: Example) -> TokenTags:
        text: str = example.meta["text"]
        offsets: list[tuple[int, int]] = example.meta["offsets"]
        names = label_names(self.parts, probs.shape[-1])
        spans: list[list[Any]] = []  # [label, start, end, [scores]]
        for tok, (start, end) in enumerate(offsets):
            if start == end:  # special tokens carry an empty span
                continue
            best = int(np.argmax(probs[tok]))
            raw = names[best]
            if raw == "O":
                continue
            prefix, _, kind = raw.partition("-") if raw[:2] in ("B-", "I-") else ("", "", raw)
            last = spans[-1] if spans else None
            touches = last is not None and start <= last[2] + 1
            if last is not None and last[0] == kind and touches and prefix != "B":
                last[2] = end
                last[3].append(float(probs[tok, best]))
            else:
                spans.append([kind, start, end, [float(probs[tok, best])]])
        return TokenTags(
            entities=tuple(
                Entity(word=text[s:e], label=k, score=float(np.mean(sc)), start=s, end=e) for k, s, e, sc in spans
            )
        )

    @override
    def quality_outputs(self, outputs: dict[str, NDArray[Any]]) -> NDArray[Any]:
        return outputs["logits"]
