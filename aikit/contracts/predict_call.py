"""``PredictCall``: the mutable object that flows through the ``aikit_predict`` hook."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from aikit.contracts.results import Generation
    from aikit.model.model import Model


class SequenceRunner(Protocol):
    """Decodes a streamed call together with others (continuous batching; ``aikit serve`` has one).

    ``run`` is called by the innermost ``aikit_predict`` with the call as the middleware left it:
    it decodes ``call.inputs[0]`` under ``call.options``, sends each piece to ``call.on_text``,
    and returns the finished ``Generation``.
    """

    def run(self, call: PredictCall) -> Generation: ...


__all__ = ["PredictCall", "SequenceRunner", "StreamClosed"]


@dataclass(kw_only=True)
class PredictCall:
    """One ``Model.predict`` or ``Model.stream`` call as middleware sees it.

    ``inputs`` is always a list (a single input is wrapped); wrappers may replace it or its
    items before yielding. ``options`` is the task's options object (or None). ``batch_size``,
    ``max_length`` and ``progress`` are the batching settings. ``extra`` is free space for
    middleware to pass data to one another.

    ``on_text`` is None for ``predict``. For ``Model.stream`` it is set, ``inputs`` holds the one
    prompt, and the core calls ``on_text(piece)`` with each piece of text as it is decoded, before
    the chain returns the finished ``Generation`` (one result, like ``predict``). A wrapper that
    must see or change the streamed text replaces ``on_text`` with a function that calls the one
    it found; changing the results after ``yield`` cannot recall pieces already sent. ``on_text``
    raises ``StreamClosed`` once the consumer stopped reading: let it propagate.

    ``runner`` is None unless a server decodes this stream together with others (a
    ``SequenceRunner``): the core then hands the call to it instead of running the model alone.
    Middleware sees and may change the call exactly as for any stream.

    ``purpose`` is ``"predict"`` for ``predict`` and ``stream``. Evaluation that scores text rather
    than predicting (perplexity: ``aikit.measure.evaluate.token_losses``) sends its texts through the same
    chain with ``purpose="token_losses"``: ``inputs`` are the texts (input middleware such as
    redaction sees and may change them), and the results are one ``float64`` array of per-token
    losses per text, not task results, so output middleware should pass them through.
    """

    model: Model
    inputs: list[Any]
    options: Any = None
    batch_size: int | None = None
    max_length: int | None = None
    progress: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    on_text: Callable[[str], None] | None = None
    runner: SequenceRunner | None = None
    purpose: Literal["predict", "token_losses"] = "predict"

    @property
    def streaming(self) -> bool:
        """True for a ``Model.stream`` call (pieces go to ``on_text`` as they are decoded)."""
        return self.on_text is not None


class StreamClosed(Exception):  # noqa: N818 - it names an event, like StopIteration
    """Raised by a streamed call's ``on_text`` once the consumer stopped reading: generation ends."""
