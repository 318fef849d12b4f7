"""When aikit shows a progress bar, and the bar: one rule for every long-running call.

The rule (``show_progress``): the caller's ``progress=True`` or ``False`` wins; left at ``None``, a bar
shows only where a person watches, that is when standard error is a terminal, and only for work long
enough to be worth one (``min_items``; 0 where each step is slow, such as a compression step or a
benchmark run). Logs, CI and pipes therefore never get bars, and a script can always force one.

tqdm is imported only when a bar is shown.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar", "show_progress"]


def show_progress(enabled: bool | None, *, items: int = 0, min_items: int = 0) -> bool:
    """Whether to show a bar over ``items`` units of work: ``enabled`` if given, else standard error is
    a terminal and ``items >= min_items``."""
    if enabled is not None:
        return enabled
    return items >= min_items and sys.stderr.isatty()


def progress_bar(
    total: int | None, *, desc: str, unit: str, enabled: bool | None = None, min_items: int = 0, leave: bool = True
) -> Any:
    """A tqdm bar on standard error over ``total`` units when ``show_progress`` says so, else None.

    ``total=None``: the amount of work is not known in advance (a stream of rows); the bar counts
    up, and ``min_items`` does not apply.

    The caller updates and closes it (``if bar is not None``). ``leave=False`` clears it when closed.
    """
    if not show_progress(enabled, items=min_items if total is None else total, min_items=min_items):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=leave)
