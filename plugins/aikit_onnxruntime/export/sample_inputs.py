"""Small real input batches to trace an export with and to validate it against torch."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from aikit.contracts.parts import ModelParts
from aikit.contracts.task import Task
from aikit.errors import BackendError

__all__ = ["SAMPLE_TEXTS", "sample_batch"]

# Two lengths, so validation covers padding and the attention mask.
SAMPLE_TEXTS = ["hello world.", "the cat is on the mat, and the dog is in the river with a fish."]


def sample_batch(task: Task, parts: ModelParts, input_shape: tuple[int, ...] | None) -> dict[str, NDArray[Any]]:
    """A two-item batch as the task would build it (``input_ids`` + ``attention_mask``, or ``pixel_values``)."""
    if task.input_kind == "image":
        if parts.preprocess is None and parts.image_processor is None:
            if input_shape is None:
                raise BackendError(
                    "cannot export this image model: it has no preprocess and no image processor, so the input "
                    "shape is unknown; pass preprocess=aikit.ImagePreprocess(...) or "
                    "backend_options={'input_shape': (C, H, W)}"
                )
            return {"pixel_values": np.random.default_rng(0).standard_normal((2, *input_shape)).astype(np.float32)}
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(2)]
        return task.collate(task.preprocess(images, max_length=None))
    tokenizer = parts.tokenizer
    if tokenizer is None:
        raise BackendError("cannot export a text model without its tokenizer (needed to build a sample batch)")
    if task.generative:
        return _left_padded([list(tokenizer(t)["input_ids"]) for t in SAMPLE_TEXTS], tokenizer, task.name)
    return task.collate(task.preprocess(SAMPLE_TEXTS, max_length=None))


def _left_padded(rows: list[list[int]], tokenizer: Any, task: str) -> dict[str, NDArray[Any]]:
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if isinstance(tokenizer.pad_token_id, int) else 0
    ids = np.full((len(rows), width), pad, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    left = task == "text-generation"
    for i, r in enumerate(rows):
        cols = slice(width - len(r), width) if left else slice(0, len(r))
        ids[i, cols] = r
        mask[i, cols] = 1
    return {"input_ids": ids, "attention_mask": mask}
