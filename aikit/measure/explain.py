"""``Model.explain``: which tokens or pixels a classifier's score depends on, as typed attributions.

An ``Explanation`` holds one input's attributions: one score per token for text classification,
one per pixel (a heat map) for image classification, for the predicted label or a chosen
``target``. Positive scores push the target's probability up, negative ones down. For an
embedding model (``feature-extraction``) an input is a *pair* of texts and the explanation is a
token-by-token matrix: how much each pair of tokens (one from each text) drives their cosine
similarity (``kind="pair"``).

Methods are plugins: an ``Explainer`` subclass registered through the ``aikit_register_explainers``
hook. aikit's own (plugin ``aikit_explain``) are ``integrated-gradients`` (captum; needs a backend
holding a torch module) and ``occlusion`` (gradient-free: it only calls ``backend.forward``, so it
runs on ONNX Runtime too). Both explain the target's *probability*.

``faithfulness`` checks an explanation can be trusted at all: deleting the top-k attributed
tokens (masking the top-k pixels) must lower the target's probability more than deleting k random
ones, on average over the inputs. It reports both drops and can fail. ``model_randomization`` is
Adebayo et al.'s sanity check (2018): the same method on the same inputs with the model's weights
shuffled must give *different* attributions; a method that passes regardless of the weights
(an edge detector) explains the input, not the model.

Pictures: ``Explanation._repr_html_`` (notebooks), ``to_html(path)`` and ``to_png(path)``
(matplotlib, the ``explain`` extra). Costs are bounded by ``ExplainOptions`` (``steps``,
``window``, ``patch``, ``batch_size``); long runs show a progress bar when stderr is a terminal.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

from aikit.errors import ConfigError, InputError, MissingDependencyError, RegistrationError, UnknownNameError
from aikit.progress import progress_bar

if TYPE_CHECKING:
    from aikit.contracts.task import Example
    from aikit.model.model import Model
    from aikit.plugins.host import PluginHost

__all__ = [
    "ExplainOptions",
    "Explainer",
    "Explanation",
    "FaithfulnessReport",
    "RandomizationReport",
    "explain",
    "faithfulness",
    "model_randomization",
    "get_explainer",
    "registered_explainers",
    "target_probabilities",
]

Kind = Literal["text", "image", "pair"]
# Below this many model calls a progress bar is noise (as in aikit.contracts.batching).
_PROGRESS_MIN_CALLS = 256


# ---------------------------------------------------------------------- options and results
@dataclass(frozen=True, kw_only=True)
class ExplainOptions:
    """Bounds on what one explanation costs.

    ``steps``: integrated-gradients interpolation steps (each is one forward and backward pass).
    ``window``: occlusion, text: tokens hidden at once (a sliding window, stride 1).
    ``patch``: occlusion, images: side of the square hidden at once, stride ``patch``; None picks
    an eighth of the image's shorter side (at least 1 pixel).
    ``batch_size``: variants run per forward call. ``progress``: a progress bar (None: only for
    long work at a terminal).
    """

    steps: int = 32
    window: int = 1
    patch: int | None = None
    batch_size: int = 32
    progress: bool | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "window", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.patch is not None and (not isinstance(self.patch, int) or self.patch < 1):
            raise ConfigError(f"patch must be a positive integer or None, got {self.patch!r}")


@dataclass(frozen=True, kw_only=True, eq=False)
class Explanation:
    """Attributions for one input of a classifier.

    ``kind`` is ``"text"`` (``tokens`` with one score each in ``attributions``, ``special`` marking
    tokens such as ``[CLS]`` that are never attributed), ``"image"`` (``attributions`` is an
    ``(H, W)`` heat map over ``image``, the preprocessed ``(C, H, W)`` input) or ``"pair"`` (two
    texts under an embedding model: ``attributions`` is a ``(len(tokens), len(tokens_b))`` matrix,
    ``probability`` is the texts' cosine similarity, ``target`` is ``"similarity"``). ``target`` is
    the explained label, ``probability`` the model's probability for it on the whole input.
    ``features`` are the model inputs explained (``faithfulness`` re-runs edited copies of them;
    for pairs, text A's, and ``features_b`` text B's).
    """

    kind: Kind
    method: str
    target: str
    target_index: int
    probability: float
    attributions: NDArray[np.float32]
    features: Mapping[str, NDArray[Any]]
    tokens: tuple[str, ...] = ()
    special: tuple[bool, ...] = ()
    image: NDArray[np.float32] | None = None
    text: str | None = None
    tokens_b: tuple[str, ...] = ()
    special_b: tuple[bool, ...] = ()
    features_b: Mapping[str, NDArray[Any]] = field(default_factory=dict)
    text_b: str | None = None

    @property
    def similarity(self) -> float:
        """A pair's cosine similarity (the value its matrix explains)."""
        if self.kind != "pair":
            raise ConfigError(f"a {self.kind} explanation has no similarity; see .probability")
        return self.probability

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` highest attributions as ``(token, score)`` (text), ``("row,col", score)`` (image) or
        ``("token_a ~ token_b", score)`` (pairs; special tokens excluded)."""
        order = _ranked(self)[:k]
        if self.kind == "text":
            return [(self.tokens[i], float(self.attributions[i])) for i in order]
        if self.kind == "pair":
            cols = len(self.tokens_b)
            return [
                (f"{self.tokens[i // cols]} ~ {self.tokens_b[i % cols]}", float(self.attributions.flat[i]))
                for i in order
            ]
        width = self.attributions.shape[1]
        return [(f"{i // width},{i % width}", float(self.attributions.flat[i])) for i in order]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields (the heat map as nested lists)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "method": self.method,
            "target": self.target,
            "target_index": self.target_index,
            "probability": self.probability,
            "attributions": self.attributions.tolist(),
        }
        if self.kind in ("text", "pair"):
            out["tokens"] = list(self.tokens)
            out["special"] = list(self.special)
        if self.kind == "pair":
            out["tokens_b"] = list(self.tokens_b)
            out["special_b"] = list(self.special_b)
        return out

    def faithfulness(self, model: Model, **options: Any) -> FaithfulnessReport:
        """``aikit.measure.explain.faithfulness(model, [self], **options)``."""
        return faithfulness(model, [self], **options)

    # ------------------------------------------------------------------ pictures
    def _repr_html_(self) -> str:
        """An HTML fragment: tokens on a red (raises the target) / blue (lowers it) scale, or the heat map
        as an inline PNG. Needs matplotlib for images."""
        title = (
            f'<div class="aikit-explanation-title">{html.escape(self.method)}: '
            f"<b>{html.escape(self.target)}</b> (p={self.probability:.3f})</div>"
        )
        if self.kind == "text":
            return f'<div class="aikit-explanation aikit-text">{title}<div>{self._token_spans()}</div></div>'
        if self.kind == "pair":
            return f'<div class="aikit-explanation aikit-pair">{title}{self._pair_table()}</div>'
        png = base64.b64encode(self._png_bytes()).decode("ascii")
        return (
            f'<div class="aikit-explanation aikit-image">{title}'
            f'<img class="aikit-heatmap" alt="attribution heat map" src="data:image/png;base64,{png}"/></div>'
        )

    def _token_spans(self) -> str:
        peak = float(np.abs(self.attributions).max()) or 1.0
        spans = []
        special_flags = self.special or (False,) * len(self.tokens)
        for token, score, special in zip(self.tokens, self.attributions.tolist(), special_flags):
            alpha = 0.0 if special else min(1.0, abs(score) / peak)
            rgb = "220,40,40" if score >= 0 else "40,90,220"
            spans.append(
                f'<span class="aikit-token" data-score="{score:.6g}" title="{score:.4g}" '
                f'style="background: rgba({rgb},{alpha:.3f}); padding: 1px 3px; margin: 1px; '
                f'border-radius: 3px; display: inline-block">{html.escape(token)}</span>'
            )
        return " ".join(spans)

    def _pair_table(self) -> str:
        """Text A's tokens as rows, text B's as columns, each cell coloured by its score."""
        peak = float(np.abs(self.attributions).max()) or 1.0
        head = "".join(f'<th class="aikit-token-b">{html.escape(t)}</th>' for t in self.tokens_b)
        rows = []
        for i, token in enumerate(self.tokens):
            cells = []
            for j in range(len(self.tokens_b)):
                score = float(self.attributions[i, j])
                alpha = min(1.0, abs(score) / peak)
                rgb = "220,40,40" if score >= 0 else "40,90,220"
                cells.append(
                    f'<td class="aikit-pair-cell" data-score="{score:.6g}" title="{score:.4g}" '
                    f'style="background: rgba({rgb},{alpha:.3f}); min-width: 1.5em"></td>'
                )
            rows.append(f'<tr><th class="aikit-token">{html.escape(token)}</th>{"".join(cells)}</tr>')
        return (
            '<table class="aikit-pair-matrix" style="border-collapse: collapse; font-size: small">'
            f"<tr><th></th>{head}</tr>{''.join(rows)}</table>"
        )

    def to_html(self, path: str | os.PathLike[str]) -> Path:
        """Write a standalone HTML page showing this explanation; return its path."""
        return write_html([self], path)

    def to_png(self, path: str | os.PathLike[str]) -> Path:
        """Write a PNG picture (coloured tokens, or the image with its heat map); return its path."""
        target = Path(path)
        target.write_bytes(self._png_bytes())
        return target

    def _png_bytes(self) -> bytes:
        plt = _pyplot()
        draw = {"text": _text_figure, "image": _image_figure, "pair": _pair_figure}[self.kind]
        figure = draw(plt, self)
        buffer = io.BytesIO()
        try:
            figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        finally:
            plt.close(figure)
        return buffer.getvalue()


@dataclass(frozen=True, kw_only=True)
class FaithfulnessReport:
    """Deletion check: mean drop of the target's probability when the ``k`` top-attributed features are
    removed (``top_k_drop``) versus ``k`` random ones (``random_drop``, averaged over ``trials``).

    ``passed`` when ``top_k_drop - random_drop > margin``. ``per_input`` holds each input's pair.
    """

    k: int
    top_k_drop: float
    random_drop: float
    margin: float
    passed: bool
    per_input: tuple[tuple[float, float], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "top_k_drop": self.top_k_drop,
            "random_drop": self.random_drop,
            "margin": self.margin,
            "passed": self.passed,
            "per_input": [list(p) for p in self.per_input],
        }


# ---------------------------------------------------------------------- the plugin contract
class Explainer(ABC):
    """One attribution method. Register subclasses with the ``aikit_register_explainers`` hook.

    ``attribute`` receives one preprocessed example and the target class index and returns the
    raw attributions: one per token position (text, ``input_ids`` length) or a ``(C, H, W)`` /
    ``(H, W)`` array (images; channels are summed). ``unsupported_reason`` says why a model cannot
    be explained by this method (for example no torch module to take gradients of), or None.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def unsupported_reason(self, model: Model) -> str | None:
        return None

    @abstractmethod
    def attribute(
        self, model: Model, example: Example, target: int, options: ExplainOptions
    ) -> NDArray[np.floating[Any]]:
        """Attributions of ``target``'s probability for ``example`` (shape as described above)."""

    def attribute_pair(
        self, model: Model, first: Example, second: Example, options: ExplainOptions
    ) -> NDArray[np.floating[Any]]:
        """A ``(tokens of first, tokens of second)`` matrix: how each token pair drives the two texts'
        cosine similarity under an embedding model. Methods that do not explain pairs keep this default,
        which raises ``ConfigError``."""
        raise ConfigError(f"explainer {self.name!r} does not explain text pairs; use method='occlusion'")


_registries: weakref.WeakKeyDictionary[PluginHost, tuple[frozenset[str], dict[str, type[Explainer]]]] = (
    weakref.WeakKeyDictionary()
)
_registry_lock = threading.Lock()


def registered_explainers() -> dict[str, type[Explainer]]:
    """Every explainer registered by the loaded plugins, by name (collected once per plugin host).

    Each plugin's ``aikit_register_explainers`` runs through pluggy's call loop
    (``PluginHost.call_plugin``), and what it registered is listed under ``explainers`` in its
    ``PluginInfo.registered`` (``aikit plugins``). Raises ``RegistrationError`` for an object that is
    not an ``Explainer`` or a duplicate name.
    """
    from aikit.plugins.host import get_host

    host = get_host()
    plugins = frozenset(host.plugins)  # a plugin added later (aikit_host.add_plugin) is seen too
    with _registry_lock:
        cached = _registries.get(host)
        if cached is not None and cached[0] == plugins:
            return dict(cached[1])
        table: dict[str, type[Explainer]] = {}
        owners: dict[str, str] = {}
        for plugin in [n for n in host.plugins if host.implements(n, "aikit_register_explainers")]:

            def register(cls: type[Explainer], plugin: str = plugin) -> None:
                if not (isinstance(cls, type) and issubclass(cls, Explainer)):
                    raise RegistrationError(
                        f"plugin {plugin!r} registered {cls!r}, which is not a subclass of aikit.Explainer",
                        plugin=plugin,
                    )
                name = getattr(cls, "name", None)
                if not isinstance(name, str) or not name:
                    raise RegistrationError(f"{cls.__name__} has no 'name' class attribute", plugin=plugin)
                if name in table:
                    raise RegistrationError(
                        f"plugin {plugin!r} registered explainer {name!r}, which plugin {owners[name]!r} already "
                        "registered",
                        plugin=plugin,
                    )
                table[name], owners[name] = cls, plugin

            host.call_plugin("aikit_register_explainers", plugin, register=register)
        for name, info in host.plugins.items():
            mine = [explainer for explainer, owner in owners.items() if owner == name]
            if mine:
                info.registered["explainers"] = mine
            else:
                info.registered.pop("explainers", None)
        _registries[host] = (plugins, table)
        return dict(table)


def get_explainer(name: str) -> type[Explainer]:
    """The explainer registered as ``name``; ``UnknownNameError`` lists the choices."""
    table = registered_explainers()
    if name not in table:
        raise UnknownNameError("explainer", name, table, "install aikit's explain extra: pip install 'aikit[explain]'")
    return table[name]


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


# ---------------------------------------------------------------------- faithfulness
def _ranked(explanation: Explanation) -> list[int]:
    """Feature positions (flat, for images and pairs) by attribution, highest first (special tokens excluded)."""
    scores = explanation.attributions.reshape(-1)
    order = np.argsort(-scores, kind="stable")
    if explanation.kind == "text" and explanation.special:
        return [int(i) for i in order if not explanation.special[i]]
    if explanation.kind == "pair":
        cols = len(explanation.tokens_b)
        special_a = explanation.special or (False,) * len(explanation.tokens)
        special_b = explanation.special_b or (False,) * cols
        return [int(i) for i in order if not (special_a[i // cols] or special_b[i % cols])]
    return [int(i) for i in order]


def _candidates(explanation: Explanation) -> list[int]:
    if explanation.kind == "text":
        return [i for i in range(len(explanation.tokens)) if not (explanation.special and explanation.special[i])]
    return list(range(explanation.attributions.size))


def _without(explanation: Explanation, positions: Sequence[int]) -> dict[str, NDArray[Any]]:
    """The explained input with ``positions`` deleted (tokens) or set to 0 in every channel (pixels)."""
    if explanation.kind == "text":
        keep = np.ones(len(explanation.tokens), dtype=bool)
        keep[list(positions)] = False
        return {
            k: (v[keep] if v.ndim == 1 and v.shape[0] == keep.shape[0] else v) for k, v in explanation.features.items()
        }
    pixels = np.array(explanation.features["pixel_values"])
    height, width = pixels.shape[1:]
    rows, cols = np.unravel_index(np.asarray(positions, dtype=np.int64), (height, width))
    pixels[:, rows, cols] = 0.0
    return {**explanation.features, "pixel_values": pixels}


def faithfulness(
    model: Model,
    explanations: Sequence[Explanation],
    *,
    k: int | None = None,
    fraction: float = 0.2,
    trials: int = 8,
    margin: float = 0.02,
    seed: int = 0,
) -> FaithfulnessReport:
    """Deletion test: do the top-attributed features matter more than random ones?

    For each explanation, the ``k`` top-attributed tokens are deleted (pixels set to 0) and the
    drop of the target's probability is compared with the mean drop for ``trials`` random sets of
    ``k`` (same candidates: special tokens are never deleted). ``k`` defaults to ``fraction`` of
    each input's candidates (at least 1). Passes when the mean top-k drop exceeds the mean random
    drop by more than ``margin`` (probability points: 0.02 keeps a random attribution's chance
    agreement from passing). Runs through ``backend.forward`` (any backend).
    """
    if not explanations:
        raise InputError("faithfulness needs at least one explanation")
    if any(e.kind == "pair" for e in explanations):
        raise ConfigError("faithfulness checks classifier explanations; pair explanations are not supported")
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction!r}")
    if trials < 1:
        raise ConfigError(f"trials must be a positive integer, got {trials!r}")
    rng = np.random.default_rng(seed)
    pairs: list[tuple[float, float]] = []
    used_k = 0
    with model._lock:
        for ex in explanations:
            candidates = _candidates(ex)
            count = min(len(candidates), k if k is not None else max(1, math.ceil(fraction * len(candidates))))
            if count < 1:
                continue
            used_k = max(used_k, count)
            variants = [_without(ex, _ranked(ex)[:count])]
            variants += [
                _without(ex, rng.choice(candidates, size=count, replace=False).tolist()) for _ in range(trials)
            ]
            probs = target_probabilities(model, [ex.features, *variants])[:, ex.target_index]
            drops = probs[0] - probs[1:]
            pairs.append((float(drops[0]), float(drops[1:].mean())))
    if not pairs:
        raise InputError("none of the explanations has a feature to delete")
    top = float(np.mean([p[0] for p in pairs]))
    rand = float(np.mean([p[1] for p in pairs]))
    return FaithfulnessReport(
        k=used_k, top_k_drop=top, random_drop=rand, margin=margin, passed=top - rand > margin, per_input=tuple(pairs)
    )


# ---------------------------------------------------------------------- model randomisation
@dataclass(frozen=True, kw_only=True)
class RandomizationReport:
    """Model-randomisation check (Adebayo et al., 2018): attributions of the trained model against the
    same method's attributions, same inputs and targets, with every weight tensor shuffled.

    ``similarity`` is the mean Spearman rank correlation of the attributions' magnitudes
    (``|a|``, as in the paper) over the positions where either map is non-zero (where both are
    exactly 0, e.g. black pixels under a black baseline, the method says nothing about any model),
    ``signed_similarity`` the same on the signed values over every position, ``per_input`` each
    input's ``(similarity, signed_similarity)``. ``passed`` when ``similarity`` is below
    ``max_similarity``: the explanation depends on what the model learned.
    """

    method: str
    similarity: float
    signed_similarity: float
    max_similarity: float
    passed: bool
    per_input: tuple[tuple[float, float], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "similarity": self.similarity,
            "signed_similarity": self.signed_similarity,
            "max_similarity": self.max_similarity,
            "passed": self.passed,
            "per_input": [list(p) for p in self.per_input],
        }


def _ranks(values: NDArray[Any]) -> NDArray[np.float64]:
    """Ranks with ties averaged (as ``scipy.stats.rankdata``)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.shape[0], dtype=np.float64)
    ranks[order] = np.arange(values.shape[0], dtype=np.float64)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse.reshape(-1), weights=ranks)
    averaged: NDArray[np.float64] = (sums / counts)[inverse.reshape(-1)]
    return averaged


def rank_correlation(a: NDArray[Any], b: NDArray[Any]) -> float:
    """Spearman's rank correlation of two equally long score vectors.

    Identical vectors give 1.0 even when constant; a constant vector against a varying one gives
    0.0 (no shared ranking), where the textbook formula is undefined.
    """
    x, y = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ConfigError(f"cannot correlate attributions of shapes {x.shape} and {y.shape}")
    if np.array_equal(x, y):
        return 1.0
    rx, ry = _ranks(x), _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def randomized_model(model: Model, *, seed: int = 0) -> Model:
    """A copy of ``model`` whose every floating-point weight tensor has its entries shuffled.

    Shuffling keeps each tensor's values (so activations keep their scale, unlike a fresh
    initialisation that may saturate) and destroys what training put where. Needs a backend
    holding a torch module (torch, keras, cuda); ``model`` is untouched.
    """
    import copy

    import torch

    from aikit.model.model import Model as _Model

    module = model.backend.torch_module()
    if module is None:
        raise ConfigError(
            f"the model-randomisation check shuffles a torch module's weights; backend {model.backend.name!r} holds "
            "none: run it on the torch or keras model (the explanation method is the same)"
        )
    clone = copy.deepcopy(module)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in clone.parameters():
            if param.is_floating_point() and param.numel() > 1:
                flat = param.detach().reshape(-1)
                param.copy_(flat[torch.randperm(flat.numel(), generator=generator)].reshape(param.shape))
    return _Model(task=type(model.task)(model.parts), backend=model.backend.with_module(clone), parts=model.parts)


def model_randomization(
    model: Model,
    explanations: Sequence[Explanation],
    *,
    max_similarity: float = 0.7,
    seed: int = 0,
    **options: Any,
) -> RandomizationReport:
    """Adebayo et al.'s model-randomisation sanity check for ``explanations`` of ``model``.

    Each explanation is recomputed with its own method and target on ``randomized_model(model)``
    (``options``: ``ExplainOptions`` fields, as given to ``explain``); the two attribution maps are
    compared by Spearman rank correlation of their magnitudes (``RandomizationReport``; special
    tokens excluded). Passes when the mean correlation is below ``max_similarity``. The default
    0.7 sits between a map that ignores the weights (1.0: an explainer returning the input scores
    exactly that) and one that keeps the input's outline but re-ranks within it (integrated
    gradients and occlusion on a digits CNN score about 0.5: ink matters to any model; see
    docs/how-to/explain.md for measured values). Classifier explanations only; one method per call.
    """
    if not explanations:
        raise InputError("model_randomization needs at least one explanation")
    methods = {e.method for e in explanations}
    if len(methods) != 1:
        raise ConfigError(f"model_randomization checks one method at a time; got {sorted(methods)}")
    if any(e.kind == "pair" for e in explanations):
        raise ConfigError("model_randomization checks classifier explanations; pair explanations are not supported")
    if not 0 < max_similarity <= 1:
        raise ConfigError(f"max_similarity must be in (0, 1], got {max_similarity!r}")
    method = methods.pop()
    opts = ExplainOptions(**options) if options else ExplainOptions()
    shuffled = randomized_model(model, seed=seed)
    explainer = get_explainer(method)()
    kind = model.task.explain_input
    if kind not in ("text", "image"):
        raise ConfigError(f"model_randomization supports classifiers; this model does {model.task.name!r}")
    from aikit.contracts.task import Example

    pairs: list[tuple[float, float]] = []
    with model._lock, shuffled._lock:
        for e in explanations:
            example = Example(index=0, length=0, features={k: np.array(v) for k, v in e.features.items()})
            again = _explain_one(shuffled, explainer, method, kind, example, e.target_index, opts)
            positions = _candidates(e)
            before = e.attributions.reshape(-1)[positions]
            after = again.attributions.reshape(-1)[positions]
            informative = (before != 0) | (after != 0)
            magnitude = rank_correlation(np.abs(before[informative]), np.abs(after[informative]))
            pairs.append((magnitude, rank_correlation(before, after)))
    similarity = float(np.mean([p[0] for p in pairs]))
    return RandomizationReport(
        method=method,
        similarity=similarity,
        signed_similarity=float(np.mean([p[1] for p in pairs])),
        max_similarity=max_similarity,
        passed=similarity < max_similarity,
        per_input=tuple(pairs),
    )


# ---------------------------------------------------------------------- pictures
def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)  # no display needed; a notebook's own backend is kept
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError(
            "matplotlib", feature="explanation pictures", install="pip install 'aikit[explain]'"
        ) from exc
    return plt


def _text_figure(plt: Any, explanation: Explanation) -> Any:
    """Tokens laid out in lines of monospace text, each on a red/blue box as in the HTML."""
    peak = float(np.abs(explanation.attributions).max()) or 1.0
    per_line, width = 60, 0  # characters per line
    placed: list[list[tuple[int, str, float]]] = [[]]  # lines of (column, token, score)
    for i, token in enumerate(explanation.tokens):
        if width + len(token) + 1 > per_line and placed[-1]:
            placed.append([])
            width = 0
        placed[-1].append((width, token, float(explanation.attributions[i])))
        width += len(token) + 1
    figure = plt.figure(figsize=(per_line * 0.11 + 0.4, 0.45 * len(placed) + 0.6))
    figure.text(
        0.01,
        0.98,
        f"{explanation.method}: {explanation.target} (p={explanation.probability:.3f})",
        va="top",
        family="monospace",
        fontsize=10,
        weight="bold",
    )
    for row, line in enumerate(placed):
        y = 1 - (row + 1.6) / (len(placed) + 1.4)
        for column, token, score in line:
            alpha = min(1.0, abs(score) / peak)
            color = (0.86, 0.16, 0.16, alpha) if score >= 0 else (0.16, 0.35, 0.86, alpha)
            figure.text(
                0.01 + column / (per_line + 2),
                y,
                token,
                family="monospace",
                fontsize=10,
                va="center",
                bbox={"boxstyle": "round,pad=0.15", "facecolor": color, "edgecolor": "none"},
            )
    return figure


def _image_figure(plt: Any, explanation: Explanation) -> Any:
    """The input image and its heat map overlaid (red raises the target's probability, blue lowers it)."""
    assert explanation.image is not None
    image = explanation.image
    shown = image[0] if image.shape[0] == 1 else np.transpose(image[:3], (1, 2, 0))
    low, high = float(shown.min()), float(shown.max())
    shown = (shown - low) / (high - low) if high > low else np.zeros_like(shown)
    peak = float(np.abs(explanation.attributions).max()) or 1.0
    figure, axes = plt.subplots(1, 2, figsize=(6.4, 3.4))
    axes[0].imshow(shown, cmap="gray" if shown.ndim == 2 else None, interpolation="nearest")
    axes[0].set_title("input")
    axes[1].imshow(shown, cmap="gray" if shown.ndim == 2 else None, interpolation="nearest")
    heat = axes[1].imshow(
        explanation.attributions, cmap="bwr", vmin=-peak, vmax=peak, alpha=0.6, interpolation="nearest"
    )
    axes[1].set_title(f"{explanation.method}: {explanation.target} (p={explanation.probability:.2f})", fontsize=9)
    for ax in axes:
        ax.axis("off")
    figure.colorbar(heat, ax=axes[1], fraction=0.046, pad=0.04)
    return figure


def _pair_figure(plt: Any, explanation: Explanation) -> Any:
    """The token-pair matrix: text A's tokens down, text B's across (red raises the similarity)."""
    rows, cols = len(explanation.tokens), len(explanation.tokens_b)
    peak = float(np.abs(explanation.attributions).max()) or 1.0
    figure, axis = plt.subplots(figsize=(max(3.5, 0.38 * cols + 2.2), max(2.5, 0.32 * rows + 1.4)))
    heat = axis.imshow(explanation.attributions, cmap="bwr", vmin=-peak, vmax=peak, aspect="auto")
    axis.set_xticks(range(cols), explanation.tokens_b, rotation=60, ha="right", fontsize=8)
    axis.set_yticks(range(rows), explanation.tokens, fontsize=8)
    axis.set_title(f"{explanation.method}: similarity {explanation.probability:.3f}", fontsize=9)
    figure.colorbar(heat, ax=axis, fraction=0.046, pad=0.04)
    return figure


def write_html(explanations: Sequence[Explanation], path: str | os.PathLike[str]) -> Path:
    """Write one standalone HTML page showing ``explanations`` in order; return its path."""
    body = "\n".join(f"<section>{e._repr_html_()}</section>" for e in explanations)
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>aikit explanation</title>'
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:2}"
        ".aikit-explanation-title{margin:.5em 0}section{margin-bottom:2em}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )
    target = Path(path)
    target.write_text(page, encoding="utf-8")
    return target
