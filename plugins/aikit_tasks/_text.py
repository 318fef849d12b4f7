"""Shared text encoding: validation, truncation with one warning, offsets for token tasks."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from aikit.contracts.task import CHARS_PER_TOKEN_BOUND, Example
from aikit.errors import InputError, TruncationWarning

_UNBOUNDED = 1_000_000  # transformers' sentinel for "no limit" is a huge int
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def as_text(item: Any, index: int) -> str:
    """Validate one text input: ``str`` (valid Unicode), or UTF-8 ``bytes``."""
    if isinstance(item, str):
        surrogate = _SURROGATE.search(item)
        if surrogate is not None:  # tokenizers (Rust) cannot take them: a clear error beats a TypeError
            raise InputError(
                f"the string holds a lone surrogate {surrogate.group()!r} at position {surrogate.start()}, "
                "which is not valid Unicode (decode bytes with errors='replace' first)",
                index=index,
            )
        return item
    if isinstance(item, (bytes, bytearray)):
        try:
            return bytes(item).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"bytes are not valid UTF-8 ({exc.reason} at byte {exc.start})", index=index) from exc
    raise InputError(f"expected a string, got {type(item).__name__}", index=index)


def model_limit(tokenizer: Any, config: Any, max_length: int | None) -> int | None:
    """The token limit: the caller's ``max_length``, else the tokenizer's or config's maximum.

    A ``max_length`` above the model's own maximum is capped to it: positions beyond it do not exist.
    """
    own: int | None = None
    limit = getattr(tokenizer, "model_max_length", None)
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(limit, int) and 0 < limit < _UNBOUNDED:
        own = limit
    elif isinstance(positions, int) and positions > 0:
        own = positions
    if max_length is not None:
        return max_length if own is None else min(max_length, own)
    return own


class TruncationNotice:
    """Warn once per task instance that inputs were truncated (a warning per item is noise)."""

    def __init__(self) -> None:
        self.warned = False

    def __call__(self, count: int, limit: int) -> None:
        if count and not self.warned:
            self.warned = True
            warnings.warn(
                f"{count} input(s) were longer than {limit} tokens and were truncated; "
                "pass max_length=... to choose the limit (this warning is shown once per model)",
                TruncationWarning,
                stacklevel=6,
            )


def encode_texts(
    tokenizer: Any,
    texts: Sequence[str],
    *,
    limit: int | None,
    notice: TruncationNotice,
    offsets: bool = False,
    add_special_tokens: bool = True,
) -> list[Example]:
    """Tokenize ``texts`` without padding; one ``Example`` per text with ``input_ids`` and ``attention_mask``."""
    if tokenizer is None:
        raise InputError("this model has no tokenizer, so it cannot take text inputs")
    if limit is not None:
        texts = [t[: limit * CHARS_PER_TOKEN_BOUND] for t in texts]
    enc = tokenizer(
        list(texts),
        truncation=limit is not None,
        max_length=limit,
        padding=False,
        return_attention_mask=True,
        return_token_type_ids=False,
        return_offsets_mapping=offsets,
        add_special_tokens=add_special_tokens,
    )
    truncated = 0
    if limit is not None and getattr(enc, "encodings", None):
        truncated = sum(1 for e in enc.encodings if e.overflowing)
    notice(truncated, limit or 0)
    examples = []
    for i, ids in enumerate(enc["input_ids"]):
        features = {
            "input_ids": np.asarray(ids, dtype=np.int64),
            "attention_mask": np.asarray(enc["attention_mask"][i], dtype=np.int64),
        }
        meta: dict[str, Any] = {"text": texts[i]}
        if offsets:
            meta["offsets"] = enc["offset_mapping"][i]
        examples.append(Example(index=i, length=len(ids), features=features, meta=meta))
    return examples


def pad_id(tokenizer: Any) -> int:
    """The tokenizer's padding id (falling back to end-of-sequence, then 0)."""
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, int):
            return value
    return 0


def softmax(logits: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)  # type: ignore[no-any-return]
