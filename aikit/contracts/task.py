"""The task contract: turn user inputs into arrays, and a backend's output arrays into results.

Tasks are backend-agnostic: they only see numpy arrays, so the same task runs on torch,
ONNX Runtime or CUDA. The batching engine (``aikit.contracts.batching``) calls ``preprocess`` on all
items, sorts the examples by ``length``, and calls ``run_batch`` once per batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from aikit.contracts.backend import Backend
    from aikit.contracts.parts import ModelParts

__all__ = ["CHARS_PER_TOKEN_BOUND", "Example", "Task", "TokenSequence"]

# A token is rarely longer than this many characters. Text tasks cut a string to this many
# characters per token of the model's limit before tokenizing, and the server counts usage on text
# cut the same way, so a hostile 1 GB string costs what a full-length input does.
CHARS_PER_TOKEN_BOUND = 32


@dataclass(slots=True)
class Example:
    """One preprocessed input: unpadded feature arrays plus what ``postprocess`` needs to map back."""

    index: int
    length: int
    features: dict[str, NDArray[Any]]
    meta: dict[str, Any] = field(default_factory=dict)


class Task(ABC):
    """What a model does, independent of the runtime.

    Class attributes describe the task so it can be chosen and checked without instantiating:

    - ``name`` / ``aliases``: ``Model.load(..., task=name)``.
    - ``input_kind``: ``"text"`` or ``"image"`` (the CLI reads image paths for image tasks).
    - ``hf_auto_class``: the transformers Auto class that builds a model for this task.
    - ``architecture_suffixes``: ``config.architectures`` suffixes that imply this task.
    - ``generative``: whether ``predict`` decodes text (``options_class`` then holds its options);
      ``Model.stream``, ``/v1/completions`` and perplexity need it.

    Capabilities the core asks about instead of task names (a third-party task declares them the
    same way and gets the same treatment):

    - ``chat``: takes chat messages (``[{"role", "content"}]``): ``/v1/chat/completions``, chat items.
    - ``embeds``: ``predict`` returns one ``Embedding`` per input and ``embed_batch`` pools a forward
      pass: ``Model.embed``, ``/v1/embeddings``, and the accuracy guard compares cosines of them.
    - ``default_metrics``: what ``evaluate`` computes when the caller names no metrics;
      ``metrics_without_references`` when the dataset has inputs only (a language model: perplexity).
    - ``explain_input``: what ``explain`` attributes over: ``"text"`` or ``"image"`` (a classifier's
      input), ``"pair"`` (the similarity of two texts), or None (not explainable).
    """

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    input_kind: ClassVar[str] = "text"
    hf_auto_class: ClassVar[str | None] = None
    architecture_suffixes: ClassVar[tuple[str, ...]] = ()
    generative: ClassVar[bool] = False
    chat: ClassVar[bool] = False
    embeds: ClassVar[bool] = False
    default_metrics: ClassVar[tuple[str, ...]] = ()
    metrics_without_references: ClassVar[tuple[str, ...]] = ()
    explain_input: ClassVar[Literal["text", "image", "pair"] | None] = None
    options_class: ClassVar[type[Any] | None] = None
    default_batch_size: ClassVar[int] = 32

    def __init__(self, parts: ModelParts) -> None:
        self.parts = parts

    @property
    def batch_size(self) -> int:
        """Batch size ``predict`` uses when the caller gives none: one measured on this model by
        ``Model.optimize`` (``task_state["batch_size"]``, saved with the artifact), else the task's default."""
        tuned = self.parts.task_state.get("batch_size")
        return (
            tuned if isinstance(tuned, int) and not isinstance(tuned, bool) and tuned > 0 else self.default_batch_size
        )

    @classmethod
    def matches(cls, parts: ModelParts) -> bool:
        """Whether the loaded model's config says it does this task (used when no task is given)."""
        architectures = getattr(parts.config, "architectures", None) or []
        return any(a.endswith(s) for a in architectures for s in cls.architecture_suffixes)

    def is_batch(self, inputs: Any) -> bool:
        """Whether ``inputs`` is a list of items (True) or one item (False).

        Lists and tuples are batches by default; a chat task treats a list of message dicts as
        one conversation.
        """
        return isinstance(inputs, (list, tuple))

    @abstractmethod
    def preprocess(self, items: Sequence[Any], *, max_length: int | None) -> list[Example]:
        """Validate and encode every item (raise ``InputError`` naming the index of a bad one)."""

    def collate(self, examples: Sequence[Example]) -> dict[str, NDArray[Any]]:
        """Stack a batch, padding 1-D features on the right to the batch's own longest item."""
        pad_values = self.pad_values()
        out: dict[str, NDArray[Any]] = {}
        for key in examples[0].features:
            arrays = [e.features[key] for e in examples]
            if arrays[0].ndim == 1:
                width = max(a.shape[0] for a in arrays)
                batch = np.full((len(arrays), width), pad_values.get(key, 0), dtype=arrays[0].dtype)
                for row, a in enumerate(arrays):
                    batch[row, : a.shape[0]] = a
                out[key] = batch
            else:
                out[key] = np.stack(arrays)
        return out

    def pad_values(self) -> dict[str, int]:
        """Padding value per feature name (``input_ids`` gets the tokenizer's pad id)."""
        return {}

    @abstractmethod
    def postprocess(self, outputs: dict[str, NDArray[Any]], examples: Sequence[Example], options: Any) -> list[Any]:
        """Turn one batch of backend outputs into one typed result per example, in order."""

    def run_batch(self, backend: Backend, examples: Sequence[Example], options: Any) -> list[Any]:
        """Run one batch end to end. Generative tasks override this to call ``backend.generate``."""
        return self.postprocess(backend.forward(self.collate(examples)), examples, options)

    def stream(self, backend: Backend, example: Example, options: Any) -> Iterator[str]:
        """Yield text pieces as they are decoded (generative tasks only)."""
        raise NotImplementedError(f"task {self.name!r} does not stream")

    def open_sequence(self, example: Example, options: Any) -> TokenSequence:
        """One prompt's decoding state, for decoders that step many sequences at once
        (``Backend.step_decoder``; generative tasks only)."""
        raise NotImplementedError(f"task {self.name!r} does not generate text")

    def state(self) -> dict[str, Any]:
        """JSON-serialisable settings saved in the manifest and given back on load (``parts.task_state``)."""
        return dict(self.parts.task_state)

    def token_strings(self, example: Example) -> tuple[list[str], list[bool]]:
        """What to show for each of ``example``'s ``input_ids`` in an explanation, and whether it is a
        special token (never attributed). The default asks the model's tokenizer; without one the
        ids themselves are shown. Tasks with their own vocabulary override this."""
        ids = [int(i) for i in example.features["input_ids"]]
        tokenizer = self.parts.tokenizer
        if tokenizer is None:
            return [str(i) for i in ids], [False] * len(ids)
        special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
        return [str(t) for t in tokenizer.convert_ids_to_tokens(ids)], [i in special_ids for i in ids]

    def embed_batch(self, outputs: dict[str, NDArray[Any]], mask: NDArray[np.int64]) -> NDArray[np.float32]:
        """One vector per row of a forward pass's ``outputs`` (tasks with ``embeds`` override this)."""
        raise NotImplementedError(f"task {self.name!r} does not embed (its class does not set embeds = True)")

    def quality_outputs(self, outputs: dict[str, NDArray[Any]]) -> NDArray[Any]:
        """The output array compression and evaluation compare between two variants of a model."""
        return next(iter(outputs.values()))


class TokenSequence(ABC):
    """One prompt being decoded token by token, as a task sees it (``Task.open_sequence``).

    Whoever drives the decoder calls ``prompt_ids`` once, then ``feed`` with each new token until
    it says the sequence is finished, then ``result``. Every call must come from one thread (the
    one that owns the model's tokenizer while it decodes).
    """

    options: Any

    @abstractmethod
    def prompt_ids(self) -> list[int]:
        """The prompt's token ids (chat template applied, cut to the context)."""

    @abstractmethod
    def feed(self, token: int) -> tuple[str, bool]:
        """Record one new token; return the text it completes (may be empty) and whether the
        sequence is finished (end of sequence, a stop string, or ``max_new_tokens``)."""

    @abstractmethod
    def result(self) -> Any:
        """The finished result (a ``Generation`` for text generation)."""
