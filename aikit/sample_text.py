"""Real English sentences for demos, benchmarks and calibration, gathered offline.

The text comes from material written by other people that ships with every CPython
install (the Python language reference and library topics in ``pydoc_data.topics``)
and, where present, from the license texts in ``/usr/share/common-licenses``. Nothing
is generated. Sentences are deduplicated and returned in a fixed, seeded order, so
every run of a benchmark sees the same inputs.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

__all__ = ["load_sentences"]

_LICENSES = Path("/usr/share/common-licenses")
_SPLIT = re.compile(r"(?<=[.!?])\s+")
# Markup-heavy fragments (code, tables) are not the prose an embedding model sees in use.
_CODE_CHARS = set("{}[]=<>|\\")


def _sources() -> list[str]:
    import pydoc_data.topics as topics

    texts = list(topics.topics.values())
    if _LICENSES.is_dir():
        for path in sorted(_LICENSES.iterdir()):
            if path.is_file():
                texts.append(path.read_text(encoding="utf-8", errors="ignore"))
    return texts


def load_sentences(n: int | None = None, *, seed: int = 0, min_chars: int = 15, max_chars: int = 600) -> list[str]:
    """Return up to ``n`` distinct real sentences of mixed length (all when ``n`` is None).

    Order is shuffled with ``seed`` so that lengths are mixed within every batch.
    """
    seen: set[str] = set()
    out: list[str] = []
    for text in _sources():
        for raw in _SPLIT.split(re.sub(r"\s+", " ", text)):
            s = raw.strip()
            if not (min_chars <= len(s) <= max_chars) or not s[0].isupper():
                continue
            if any(c in _CODE_CHARS for c in s) or s in seen:
                continue
            seen.add(s)
            out.append(s)
    random.Random(seed).shuffle(out)
    return out if n is None else out[:n]
