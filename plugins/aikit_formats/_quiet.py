"""Silence transformers' per-load progress bars while aikit loads (aikit reports its own progress)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def quiet_transformers() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


@contextmanager
def gguf_progress_on_terminals_only() -> Iterator[None]:
    """Show transformers' GGUF de-quantisation bar on a terminal only.

    That conversion is the one slow step of a first GGUF load (tens of seconds), so a person at a
    terminal should see it move; in logs, pipes and CI its carriage-return bar is noise. transformers
    creates it with a plain ``tqdm.auto.tqdm`` that ignores its progress-bar switch, so for the
    duration of the call its module gets a ``tqdm`` with ``disable=None`` (tqdm's own "only on a
    TTY" rule). Restored afterwards, also on error.
    """
    import functools

    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    original: Any = getattr(gguf_utils, "tqdm", None)
    if original is None:  # a transformers release that no longer has the bar
        yield
        return
    setattr(gguf_utils, "tqdm", functools.partial(original, disable=None))  # noqa: B010 (not exported)
    try:
        yield
    finally:
        setattr(gguf_utils, "tqdm", original)  # noqa: B010
