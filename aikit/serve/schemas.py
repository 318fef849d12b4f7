"""Request bodies of the HTTP API (pydantic): unknown fields are refused with ``422``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "EmbeddingsRequest",
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


class EmbeddingsRequest(BaseModel):
    """OpenAI ``POST /v1/embeddings``. Extra OpenAI fields (``user``) are accepted and ignored."""

    input: str | list[str] = Field(description="A string or a list of strings (token arrays are not supported).")
    model: str | None = None
    encoding_format: Literal["float"] = "float"
    dimensions: int | None = Field(default=None, description="Not supported: must be omitted or the model's size.")


class ChatRequest(BaseModel):
    """OpenAI ``POST /v1/chat/completions`` (greedy unless ``temperature`` > 0)."""

    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=4096)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    n: int = Field(default=1, ge=1, le=1, description="Only one choice is supported.")
