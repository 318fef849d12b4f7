"""Running explanations: ``explain`` for classifiers and embedding pairs, and the model calls methods share."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from aikit.errors import ConfigError, InputError
from aikit.measure.explain._registry import Explainer, get_explainer
from aikit.measure.explain._types import ExplainOptions, Explanation
from aikit.progress import progress_bar

if TYPE_CHECKING:
    from aikit.contracts.task import Example
    from aikit.model.model import Model

# Below this many model calls a progress bar is noise (as in aikit.contracts.batching).
_PROGRESS_MIN_CALLS = 256


# ---------------------------------------------------------------------- running
def explain(
    model: Model,
    inputs: Any,
    *,
    method: str | None = None,
    target: str | int | None = None,
    max_length: int | None = None,
    **options: Any,
) -> Any:
    """Attributions for one input (one ``Explanation``) or a list of inputs (a list).

    ``method`` names a registered explainer; None picks ``integrated-gradients`` when the backend
    holds a torch module and ``occlusion`` otherwise. ``target`` is a label name or class index
    (default: each input's predicted label). ``options`` are ``ExplainOptions`` fields. Supports
    ``text-classification`` and ``image-classification`` models, and ``feature-extraction``
    (embedding) models, whose input is a pair of texts ``(a, b)`` (one ``Explanation`` of kind
    ``"pair"``) or a list of pairs; others raise ``ConfigError``.
    """
    kind = model.task.explain_input
    if kind is None:
        raise ConfigError(
            f"explain() supports tasks that declare what to attribute over (Task.explain_input: classifiers of "
            f"text or images, embedding models); this model does {model.task.name!r}"
        )
    opts = ExplainOptions(**options) if options else ExplainOptions()
    if kind == "pair":
        return _explain_pairs(model, inputs, method or "occlusion", target, max_length, opts)
    if method is None:
        method = "integrated-gradients" if model.backend.torch_module() is not None else "occlusion"
    explainer = get_explainer(method)()
    reason = explainer.unsupported_reason(model)
    if reason is not None:
        raise ConfigError(f"explainer {method!r} cannot explain this model: {reason}")
    is_batch = model.task.is_batch(inputs)
    items = list(inputs) if is_batch else [inputs]
    with model._lock:  # tokenizers and several runtimes are not re-entrant (as in predict)
        examples = model.task.preprocess(items, max_length=max_length)
        results = [_explain_one(model, explainer, method, kind, ex, target, opts) for ex in examples]
    return results if is_batch else results[0]


def _explain_one(
    model: Model,
    explainer: Explainer,
    method: str,
    kind: Literal["text", "image"],
    example: Example,
    target: str | int | None,
    options: ExplainOptions,
) -> Explanation:
    probs = target_probabilities(model, [example.features])[0]
    index = _target_index(model, target, probs.shape[-1], int(np.argmax(probs)))
    raw = np.asarray(explainer.attribute(model, example, index, options), dtype=np.float32)
    names = _label_names(model, probs.shape[-1])
    common: dict[str, Any] = {
        "method": method,
        "target": names[index],
        "target_index": index,
        "probability": float(probs[index]),
        "features": {k: np.array(v) for k, v in example.features.items()},
    }
    if kind == "text":
        ids = example.features["input_ids"]
        if raw.shape != ids.shape:
            raise ConfigError(f"explainer {method!r} returned {raw.shape} attributions for {ids.shape[0]} tokens")
        shown, flags = model.task.token_strings(example)
        tokens, special = tuple(shown), tuple(flags)
        raw = np.where(np.array(special, dtype=bool), 0.0, raw).astype(np.float32)
        return Explanation(
            kind="text", attributions=raw, tokens=tokens, special=special, text=example.meta.get("text"), **common
        )
    pixels = example.features["pixel_values"]
    if pixels.ndim != 3:
        raise ConfigError(
            f"image explanations need (C, H, W) inputs; this model's preprocess gives shape {pixels.shape}"
        )
    heat = raw.sum(axis=0) if raw.ndim == 3 else raw
    if heat.shape != pixels.shape[1:]:
        raise ConfigError(f"explainer {method!r} returned a {heat.shape} map for a {pixels.shape} image")
    return Explanation(kind="image", attributions=heat.astype(np.float32), image=pixels.astype(np.float32), **common)


def _is_pair(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, str) for v in value)


def _explain_pairs(
    model: Model, inputs: Any, method: str, target: Any, max_length: int | None, options: ExplainOptions
) -> Any:
    """One ``kind="pair"`` explanation per ``(text_a, text_b)``; see ``explain``."""
    if target not in (None, "similarity"):
        raise ConfigError(f"a pair explanation explains the similarity; target={target!r} has no meaning here")
    single = _is_pair(inputs)
    pairs = [inputs] if single else list(inputs) if isinstance(inputs, (list, tuple)) else []
    if not pairs or not all(_is_pair(p) for p in pairs):
        raise InputError("an embedding model explains pairs of texts: pass (text_a, text_b) or a list of such pairs")
    explainer = get_explainer(method)()
    reason = explainer.unsupported_reason(model)
    if reason is not None:
        raise ConfigError(f"explainer {method!r} cannot explain this model: {reason}")
    results = []
    with model._lock:
        for a, b in pairs:
            first, second = model.task.preprocess([a, b], max_length=max_length)
            raw = np.asarray(explainer.attribute_pair(model, first, second, options), dtype=np.float32)
            shape = (first.features["input_ids"].shape[0], second.features["input_ids"].shape[0])
            if raw.shape != shape:
                raise ConfigError(f"explainer {method!r} returned a {raw.shape} matrix for {shape} tokens")
            tokens, special = [], []
            for ex in (first, second):
                shown, flags = model.task.token_strings(ex)
                tokens.append(tuple(shown))
                special.append(tuple(flags))
            keep = np.outer(~np.array(special[0], dtype=bool), ~np.array(special[1], dtype=bool))
            vectors = pair_embeddings(model, [first.features, second.features])
            results.append(
                Explanation(
                    kind="pair",
                    method=method,
                    target="similarity",
                    target_index=0,
                    probability=float(vectors[0] @ vectors[1]),
                    attributions=np.where(keep, raw, 0.0).astype(np.float32),
                    features={k: np.array(v) for k, v in first.features.items()},
                    features_b={k: np.array(v) for k, v in second.features.items()},
                    tokens=tokens[0],
                    special=special[0],
                    tokens_b=tokens[1],
                    special_b=special[1],
                    text=a,
                    text_b=b,
                )
            )
    return results[0] if single else results


def pair_embeddings(
    model: Model, features: Sequence[Mapping[str, NDArray[Any]]], *, batch_size: int = 32, progress: bool | None = None
) -> NDArray[np.float64]:
    """Unit-length sentence embeddings of ``features`` (token dicts), pooled as the model's task pools
    them, through ``model.backend.forward`` only (any backend). The caller holds the model's lock."""
    from aikit.contracts.task import Example

    examples = [Example(index=i, length=0, features=dict(f)) for i, f in enumerate(features)]
    rows: list[NDArray[np.float64]] = []
    for batch in _batched(examples, batch_size, progress=progress, what="explain"):
        arrays = model.task.collate(batch)
        mask = np.asarray(arrays["attention_mask"], dtype=np.int64)
        vectors = np.asarray(model.task.embed_batch(model.backend.forward(arrays), mask), dtype=np.float64)
        rows.append(vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None))
    return np.concatenate(rows, axis=0)


def _label_names(model: Model, count: int) -> list[str]:
    labels = model.parts.labels or []
    id2label = getattr(model.parts.config, "id2label", None) or {}
    return [
        labels[i] if i < len(labels) else str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(count)
    ]


def _target_index(model: Model, target: str | int | None, count: int, predicted: int) -> int:
    if target is None:
        return predicted
    if isinstance(target, int) and not isinstance(target, bool):
        if not 0 <= target < count:
            raise ConfigError(f"target index {target} is out of range for {count} classes")
        return target
    names = _label_names(model, count)
    if target in names:
        return names.index(target)
    raise ConfigError(f"unknown target label {target!r}; the model's labels are {names}")


def target_probabilities(
    model: Model, features: Sequence[Mapping[str, NDArray[Any]]], *, batch_size: int = 32, progress: bool | None = None
) -> NDArray[np.float64]:
    """Class probabilities for each feature dict, through ``model.backend.forward`` only (any backend).

    Feature dicts of different lengths are padded per batch by the task's ``collate``. The caller
    holds the model's lock (or owns the model).
    """
    from aikit.contracts.task import Example

    examples = [Example(index=i, length=0, features=dict(f)) for i, f in enumerate(features)]
    rows: list[NDArray[np.float64]] = []
    for batch in _batched(examples, batch_size, progress=progress, what="explain"):
        logits = np.asarray(model.backend.forward(model.task.collate(batch))["logits"], dtype=np.float64)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        rows.append(e / e.sum(axis=-1, keepdims=True))
    return np.concatenate(rows, axis=0)


def _batched(items: Sequence[Any], size: int, *, progress: bool | None, what: str) -> Iterator[list[Any]]:
    bar = progress_bar(len(items), desc=what, unit="variant", enabled=progress, min_items=_PROGRESS_MIN_CALLS)
    try:
        for start in range(0, len(items), size):
            chunk = list(items[start : start + size])
            yield chunk
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
