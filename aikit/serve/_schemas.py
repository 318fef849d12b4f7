"""Request bodies of aikit's own routes (pydantic): unknown fields are refused with ``422``.

The OpenAI-compatible routes have theirs in ``aikit.serve._openai_schemas``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatMessage",
    "ImageInput",
    "PredictRequest",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageInput(_Strict):
    """An image sent inline: base64 of the file bytes (PNG, JPEG, ...). Never a path."""

    image_base64: str = Field(min_length=1, description="Base64 of an encoded image file.")


class ChatMessage(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str


Item = str | ImageInput | list[ChatMessage]


class PredictRequest(_Strict):
    """``POST /v1/predict``: one output per input, in order.

    ``inputs`` items are strings (text tasks), ``{"image_base64": ...}`` (image tasks) or a list of
    chat messages (text generation). ``options`` are the task's own (generation:
    ``max_new_tokens``, ``temperature``, ...); unknown names are refused.
    """

    inputs: list[Item] = Field(min_length=1, description="The items to run the model on.")
    options: dict[str, Any] = Field(default_factory=dict, description="Task options (see the model's task).")
