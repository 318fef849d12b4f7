"""Pictures of explanations: matplotlib figures (PNG) and the HTML page."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aikit.errors import MissingDependencyError
from aikit.measure.explain._types import Explanation

if TYPE_CHECKING:
    pass


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
