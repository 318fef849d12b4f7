"""``feature-extraction``: sentence embeddings with the model's own pooling and normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from typing_extensions import override

from aikit.contracts.parts import ModelParts
from aikit.contracts.results import Embedding
from aikit.contracts.task import Example, Task
from aikit.errors import ConfigError

from ._text import TruncationNotice, as_text, encode_texts, model_limit, pad_id

POOLING_MODES = ("mean", "cls", "max", "lasttoken")


def pool(hidden: NDArray[np.float32], mask: NDArray[np.int64], mode: str) -> NDArray[np.float32]:
    """Pool token vectors ``(batch, tokens, dim)`` into sentence vectors ``(batch, dim)``."""
    m = mask[..., None].astype(hidden.dtype)
    if mode == "mean":
        summed: NDArray[np.float32] = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        return summed
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return np.where(m > 0, hidden, -np.inf).max(axis=1)  # type: ignore[no-any-return]
    if mode == "lasttoken":
        last = mask.sum(axis=1) - 1
        picked: NDArray[np.float32] = hidden[np.arange(hidden.shape[0]), last]
        return picked
    raise ConfigError(f"unknown pooling {mode!r}; choose one of {', '.join(POOLING_MODES)}")


class FeatureExtraction(Task):
    """Text in, one embedding per text out.

    Pooling (``mean``, ``cls``, ``max``, ``lasttoken``) and L2 normalisation come from the model's
    sentence-transformers config when it has one (``parts.task_state``), else mean pooling without
    normalisation. A backend may return ``sentence_embedding`` directly (pooling done in-graph).
    """

    name = "feature-extraction"
    embeds = True
    default_metrics = ("cosine_agreement",)
    explain_input = "pair"
    aliases = ("embeddings", "sentence-similarity")
    description = "sentence embeddings (pooled, optionally normalised)"
    hf_auto_class = "AutoModel"
    architecture_suffixes = ()  # a bare encoder says nothing about the task: pass task= explicitly
    default_batch_size = 32

    def __init__(self, parts: ModelParts) -> None:
        super().__init__(parts)
        self.pooling = str(parts.task_state.get("pooling", "mean"))
        self.normalize = bool(parts.task_state.get("normalize", False))
        if self.pooling not in POOLING_MODES:
            raise ConfigError(f"unknown pooling {self.pooling!r}; choose one of {', '.join(POOLING_MODES)}")
        self._notice = TruncationNotice()

    @classmethod
    @override
    def matches(cls, parts: ModelParts) -> bool:
        return "pooling" in parts.task_state

    @override
    def preprocess(self, items: Sequence[Any], *, max_length: int | None) -> list[Example]:
        texts = [as_text(item, i) for i, item in enumerate(items)]
        # sentence-transformers models declare their own (often shorter) limit; honour it for parity.
        own = self.parts.task_state.get("max_seq_length")
        limit = model_limit(
            self.parts.tokenizer, self.parts.config, max_length or (own if isinstance(own, int) else None)
        )
        return encode_texts(self.parts.tokenizer, texts, limit=limit, notice=self._notice)

    @override
    def pad_values(self) -> dict[str, int]:
        return {"input_ids": pad_id(self.parts.tokenizer)}

    @override
    def embed_batch(self, outputs: dict[str, NDArray[Any]], mask: NDArray[np.int64]) -> NDArray[np.float32]:
        if "sentence_embedding" in outputs:
            vectors = outputs["sentence_embedding"].astype(np.float32, copy=False)
        else:
            hidden = outputs.get("last_hidden_state", outputs.get("token_embeddings"))
            if hidden is None:
                hidden = next(iter(outputs.values()))
            vectors = pool(hidden.astype(np.float32, copy=False), mask, self.pooling)
            if self.normalize:
                vectors = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        return vectors

    @override
    def postprocess(self, outputs: dict[str, NDArray[Any]], examples: Sequence[Example], options: Any) -> list[Any]:
        # Only the mask is needed for pooling: rebuild it, not the whole collated batch.
        width = max(e.length for e in examples)
        mask = np.zeros((len(examples), width), dtype=np.int64)
        for row, e in enumerate(examples):
            mask[row, : e.length] = e.features["attention_mask"]
        vectors = self.embed_batch(outputs, mask)
        return [Embedding(vector=np.ascontiguousarray(v, dtype=np.float32)) for v in vectors]

    @override
    def quality_outputs(self, outputs: dict[str, NDArray[Any]]) -> NDArray[Any]:
        return outputs.get("last_hidden_state", next(iter(outputs.values())))

    @override
    def state(self) -> dict[str, Any]:
        return {**self.parts.task_state, "pooling": self.pooling, "normalize": self.normalize}
