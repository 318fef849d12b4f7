"""Request bodies of the OpenAI-compatible routes, and what aikit does with each OpenAI field.

Every field OpenAI defines for a route is declared here, so a client's request is never cut
down silently. Fields aikit honours are typed and validated; fields it cannot honour
(``tools``, ``logprobs``, a penalty, a ``response_format`` other than text, ...) are accepted by
the parser only so that ``unsupported_fields`` can name them: the route then answers ``400``
listing them, unless the value given asks for nothing (``logprobs=false``,
``frequency_penalty=0``, ``response_format={"type": "text"}``). Names OpenAI does not define are
refused the same way (``400``, "unrecognized request argument").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "CompletionRequest",
    "EmbeddingsRequest",
    "StreamOptions",
    "TextPart",
]


def _absent(value: Any) -> bool:
    """A value that asks for nothing: null, false, zero, an empty list or mapping."""
    return value is None or value is False or value == 0 or value == [] or value == {}


def _in(*allowed: Any) -> Callable[[Any], bool]:
    return lambda value: _absent(value) or value in allowed


class _OpenAIBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # field name -> "this value asks for nothing aikit would ignore"
    unsupported: ClassVar[dict[str, Callable[[Any], bool]]] = {}

    def unsupported_fields(self) -> list[str]:
        """The fields sent with a value aikit cannot honour, in declaration order."""
        return [name for name, harmless in self.unsupported.items() if not harmless(getattr(self, name))]


class TextPart(BaseModel):
    """A message content part. Only ``{"type": "text", "text": ...}`` is honoured; other types
    (``image_url``, ``input_audio``, ``file``) parse so that the route can refuse them by name."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One chat message. ``developer`` is OpenAI's newer name for ``system`` and is sent to the
    chat template as ``system``; ``content`` may be a string or a list of text parts."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[Any] | None = None
    tool_call_id: str | None = None
    function_call: Any = None
    refusal: str | None = None
    audio: Any = None


class StreamOptions(BaseModel):
    """``stream_options``: ``include_usage`` adds a last chunk with the usage and no choices."""

    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False


class _Sampling(_OpenAIBody):
    """Fields shared by chat and text completions."""

    model: str | None = None
    n: int = Field(default=1, ge=1, le=128, description="Independent samples (identical when greedy).")
    seed: int | None = Field(default=None, ge=0, lt=2**63)
    stop: str | list[str] | None = Field(default=None, description="Up to 4 strings that end generation.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    user: str | None = Field(default=None, description="An end-user id; aikit keeps no record of it.")
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, Any] | None = None
    logprobs: Any = None


class EmbeddingsRequest(_OpenAIBody):
    """OpenAI ``POST /v1/embeddings``.

    ``input``: a string, a list of strings, or token ids of *this model's* tokenizer (a list of
    integers, or a list of such lists), which are decoded to text with it. ``encoding_format``:
    ``"float"`` or ``"base64"`` (little-endian float32, what the ``openai`` client asks for by
    default). ``dimensions``: the model's own size, or one of the sizes the server declares it
    was trained to be truncated to (``ServeSettings.embedding_dimensions``).
    """

    input: str | list[str] | list[int] | list[list[int]]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


class ChatRequest(_Sampling):
    """OpenAI ``POST /v1/chat/completions`` (greedy unless ``temperature`` > 0)."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=4096)
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    functions: list[Any] | None = None
    function_call: Any = None
    modalities: list[str] | None = None
    audio: Any = None
    prediction: Any = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    web_search_options: Any = None
    store: bool | None = None
    metadata: dict[str, Any] | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None

    unsupported: ClassVar[dict[str, Callable[[Any], bool]]] = {
        "frequency_penalty": _absent,
        "presence_penalty": _absent,
        "logit_bias": _absent,
        "logprobs": _absent,
        "top_logprobs": _absent,
        "response_format": _in({"type": "text"}),
        "tools": _absent,
        "tool_choice": _in("none"),
        "functions": _absent,
        "function_call": _in("none"),
        "modalities": _in(["text"]),
        "audio": _absent,
        "prediction": _absent,
        "reasoning_effort": _absent,
        "verbosity": _absent,
        "web_search_options": _absent,
        "store": _absent,  # nothing is stored, so nothing could be retrieved later
        "metadata": _absent,  # only meaningful for stored completions
        "service_tier": _in("auto", "default"),
        # parallel_tool_calls, prompt_cache_key and safety_identifier ask for nothing without
        # tools or a hosted cache: accepted.
    }


class CompletionRequest(_Sampling):
    """OpenAI legacy ``POST /v1/completions``: raw text continuation, no chat template."""

    prompt: str | list[str] = Field(description="A prompt or a list of prompts (token ids are not accepted).")
    max_tokens: int | None = Field(default=16, ge=1, le=4096)
    echo: bool | None = None
    best_of: int | None = None
    suffix: str | None = None

    unsupported: ClassVar[dict[str, Callable[[Any], bool]]] = {
        "frequency_penalty": _absent,
        "presence_penalty": _absent,
        "logit_bias": _absent,
        "logprobs": _absent,
        "echo": _absent,
        "best_of": _in(1),
        "suffix": _absent,
    }
