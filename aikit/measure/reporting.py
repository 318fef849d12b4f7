"""Shared plumbing for reports: text tables through rich, plots through a headless matplotlib."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from aikit.errors import ConfigError, MissingDependencyError

__all__ = ["PLOT_SUFFIXES", "check_plot_path", "format_bytes", "pyplot", "render_text", "save_figure"]

PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def check_plot_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, after checking its suffix names a format matplotlib writes."""
    out = Path(path)
    if out.suffix.lower() not in PLOT_SUFFIXES:
        raise ConfigError(f"plot file {str(out)!r} must end in one of {', '.join(PLOT_SUFFIXES)}")
    return out


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (works without a display)."""
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", feature="plots", install="pip install 'aikit[eval]'") from exc
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``figure`` to ``path`` (format from the suffix), close it, and return the path."""
    out = check_plot_path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        figure.savefig(out, dpi=150, bbox_inches="tight")
    finally:
        pyplot().close(figure)
    return out


def render_text(*renderables: Any, width: int = 120) -> str:
    """Plain text (no colour codes) of rich renderables such as ``rich.table.Table``.

    A table's title is printed as a line of its own above it: rich would wrap a title longer
    than the table to the table's width.
    """
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=False, color_system=None, markup=False, highlight=False)
    for item in renderables:
        if isinstance(item, Table) and item.title:
            heading, item.title = item.title, None
            console.print(heading)
        console.print(item)
    return buffer.getvalue()


def format_bytes(value: float | None) -> str:
    """``91.3 MB`` style (decimal units, as disk sizes are usually quoted); ``-`` for None."""
    if value is None:
        return "-"
    units = ("B", "kB", "MB", "GB", "TB")
    step = 0
    while abs(value) >= 1000 and step < len(units) - 1:
        value /= 1000
        step += 1
    return f"{value:.0f} B" if step == 0 else f"{value:.1f} {units[step]}"
