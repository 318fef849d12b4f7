"""Where aikit keeps what it can reuse across processes: the one home of the cache location.

``cache_dir()`` is ``$AIKIT_CACHE_DIR`` when set, else the platform's user cache folder for aikit
(``platformdirs``): ``$XDG_CACHE_HOME/aikit`` on Linux, ``~/.cache/aikit`` when that is unset,
``~/Library/Caches/aikit`` on macOS, ``%LOCALAPPDATA%\\aikit\\Cache`` on Windows. Plugins keep their
entries in a sub-folder of it (``cache_dir("onnx")``, ``cache_dir("gguf")``). Nothing is created
here: the code that writes an entry creates its folder.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(*parts: str) -> Path:
    """aikit's cache folder, or the path ``parts`` below it; read from the environment on each call."""
    override = os.environ.get("AIKIT_CACHE_DIR")
    if override:
        root = Path(override)
    else:
        from platformdirs import user_cache_path

        root = user_cache_path("aikit", appauthor=False)
    return root.joinpath(*parts)
