"""Recipe: a task plugin. ``cls-embedding``: the first token's hidden state as the sentence vector
(the pooling BERT-style classifiers were trained with), instead of MiniLM's mean pooling."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from typing_extensions import override

from aikit import Embedding, Example, InputError, Task, hookimpl


# --8<-- [start:task]
class ClsEmbedding(Task):
    name = "cls-embedding"
    description = "first-token ([CLS]) hidden state as the sentence embedding"
    hf_auto_class = "AutoModel"  # how the Hugging Face loader builds the model for this task

    @override
    def preprocess(self, items: Sequence[Any], *, max_length: int | None) -> list[Example]:
        tokenizer = self.parts.tokenizer
        examples = []
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item:
                raise InputError(f"expected a non-empty string, got {type(item).__name__}", index=i)
            ids = tokenizer(item, truncation=True, max_length=max_length or tokenizer.model_max_length)["input_ids"]
            features = {"input_ids": np.asarray(ids, np.int64), "attention_mask": np.ones(len(ids), np.int64)}
            examples.append(Example(index=i, length=len(ids), features=features))
        return examples

    @override
    def pad_values(self) -> dict[str, int]:
        return {"input_ids": int(self.parts.tokenizer.pad_token_id or 0)}

    @override
    def postprocess(self, outputs: dict[str, NDArray[Any]], examples: Sequence[Example], options: Any) -> list[Any]:
        first = outputs["last_hidden_state"][:, 0].astype(np.float32)
        first /= np.linalg.norm(first, axis=1, keepdims=True).clip(1e-12)
        return [Embedding(vector=row) for row in first]


@hookimpl
def aikit_register_tasks(register: Callable[[type[Task]], None]) -> None:
    register(ClsEmbedding)


# --8<-- [end:task]
