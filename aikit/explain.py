"""``Model.explain``: which tokens or pixels a classifier's score depends on, as typed attributions.

An ``Explanation`` holds one input's attributions: one score per token for text classification,
one per pixel (a heat map) for image classification, for the predicted label or a chosen
``target``. Positive scores push the target's probability up, negative ones down.

Methods are plugins: an ``Explainer`` subclass registered through the ``aikit_register_explainers``
hook. aikit's own (plugin ``aikit_explain``) are ``integrated-gradients`` (captum; needs a backend
holding a torch module) and ``occlusion`` (gradient-free: it only calls ``backend.forward``, so it
runs on ONNX Runtime too). Both explain the target's *probability*.

``faithfulness`` checks an explanation can be trusted at all: deleting the top-k attributed
tokens (masking the top-k pixels) must lower the target's probability more than deleting k random
ones, on average over the inputs. It reports both drops and can fail.

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
import sys
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

from .errors import ConfigError, InputError, MissingDependencyError, RegistrationError, UnknownNameError

if TYPE_CHECKING:
    from .model import Model
    from .plugins import PluginHost
    from .task import Example

__all__ = [
    "ExplainOptions",
    "Explainer",
    "Explanation",
    "FaithfulnessReport",
    "explain",
    "faithfulness",
    "get_explainer",
    "registered_explainers",
    "target_probabilities",
]

_TASKS: dict[str, Literal["text", "image"]] = {"text-classification": "text", "image-classification": "image"}
# Below this many model calls a progress bar is noise (as in aikit.batching).
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
    tokens such as ``[CLS]`` that are never attributed) or ``"image"`` (``attributions`` is an
    ``(H, W)`` heat map over ``image``, the preprocessed ``(C, H, W)`` input). ``target`` is the
    explained label, ``probability`` the model's probability for it on the whole input.
    ``features`` are the model inputs explained (``faithfulness`` re-runs edited copies of them).
    """

    kind: Literal["text", "image"]
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

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` highest attributions as ``(token, score)`` (text) or ``("row,col", score)`` (image)."""
        order = _ranked(self)[:k]
        if self.kind == "text":
            return [(self.tokens[i], float(self.attributions[i])) for i in order]
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
        if self.kind == "text":
            out["tokens"] = list(self.tokens)
            out["special"] = list(self.special)
        return out

    def faithfulness(self, model: Model, **options: Any) -> FaithfulnessReport:
        """``aikit.explain.faithfulness(model, [self], **options)``."""
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
        figure = _text_figure(plt, self) if self.kind == "text" else _image_figure(plt, self)
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


_registries: weakref.WeakKeyDictionary[PluginHost, tuple[frozenset[str], dict[str, type[Explainer]]]] = (
    weakref.WeakKeyDictionary()
)
_registry_lock = threading.Lock()


def registered_explainers() -> dict[str, type[Explainer]]:
    """Every explainer registered by the loaded plugins, by name (collected once per plugin host).

    Raises ``RegistrationError`` for an object that is not an ``Explainer`` or a duplicate name.
    """
    from .plugins import get_host

    host = get_host()
    plugins = frozenset(host.plugins)  # a plugin added later (aikit_host.add_plugin) is seen too
    with _registry_lock:
        cached = _registries.get(host)
        if cached is not None and cached[0] == plugins:
            return dict(cached[1])
        table: dict[str, type[Explainer]] = {}
        owners: dict[str, str] = {}
        for impl in host.pm.hook.aikit_register_explainers.get_hookimpls():

            def register(cls: type[Explainer], plugin: str = impl.plugin_name) -> None:
                if not (isinstance(cls, type) and issubclass(cls, Explainer)):
                    raise RegistrationError(
                        f"plugin {plugin!r} registered {cls!r}, which is not a subclass of aikit.explain.Explainer",
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

            impl.function(register=register)
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
    ``text-classification`` and ``image-classification`` models; others raise ``ConfigError``.
    """
    kind = _TASKS.get(model.task.name)
    if kind is None:
        raise ConfigError(f"explain() supports {', '.join(sorted(_TASKS))} models; this one does {model.task.name!r}")
    opts = ExplainOptions(**options) if options else ExplainOptions()
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
        tokenizer = model.parts.tokenizer
        tokens = tuple(str(t) for t in tokenizer.convert_ids_to_tokens([int(i) for i in ids]))
        special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
        special = tuple(int(i) in special_ids for i in ids)
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
    from .task import Example

    examples = [Example(index=i, length=0, features=dict(f)) for i, f in enumerate(features)]
    rows: list[NDArray[np.float64]] = []
    for batch in _batched(examples, batch_size, progress=progress, what="explain"):
        logits = np.asarray(model.backend.forward(model.task.collate(batch))["logits"], dtype=np.float64)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        rows.append(e / e.sum(axis=-1, keepdims=True))
    return np.concatenate(rows, axis=0)


def _batched(items: Sequence[Any], size: int, *, progress: bool | None, what: str) -> Iterator[list[Any]]:
    show = progress if progress is not None else (len(items) >= _PROGRESS_MIN_CALLS and sys.stderr.isatty())
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), desc=what, unit="variant", file=sys.stderr)
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
    """Feature positions by attribution, highest first (special tokens excluded)."""
    scores = explanation.attributions.reshape(-1)
    order = np.argsort(-scores, kind="stable")
    if explanation.kind == "text" and explanation.special:
        return [int(i) for i in order if not explanation.special[i]]
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
