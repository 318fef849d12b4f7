"""Options and results of explanations: ``ExplainOptions``, ``Explanation``, ``FaithfulnessReport``."""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from aikit.errors import ConfigError

if TYPE_CHECKING:
    from aikit.model.model import Model

Kind = Literal["text", "image", "pair"]


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
        from aikit.measure.explain._faithfulness import _ranked

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
        from aikit.measure.explain._faithfulness import faithfulness

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
        from aikit.measure.explain._pictures import write_html

        return write_html([self], path)

    def to_png(self, path: str | os.PathLike[str]) -> Path:
        """Write a PNG picture (coloured tokens, or the image with its heat map); return its path."""
        target = Path(path)
        target.write_bytes(self._png_bytes())
        return target

    def _png_bytes(self) -> bytes:
        from aikit.measure.explain._pictures import _image_figure, _pair_figure, _pyplot, _text_figure

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
