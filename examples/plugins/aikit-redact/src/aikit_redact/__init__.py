"""aikit-redact: mask e-mail addresses and phone numbers in text inputs before any model sees them.

Installed, this module is an aikit plugin (entry point ``redact`` in the ``aikit`` group). It
implements one hook, ``aikit_predict``, as a *wrapper*: it rewrites ``call.inputs`` before the
prediction runs and passes the results through unchanged.

What it masks (``redact``):

- e-mail addresses → ``[EMAIL]``
- phone numbers: an optional ``+`` then 7 to 15 digits, which may be separated by spaces, dots,
  dashes or parentheses (``+44 20 7946 0958``, ``(555) 123-4567``) → ``[PHONE]``. ISO dates
  (``2024-05-01``) are left alone.

Plain strings and chat conversations (lists of ``{"role", "content"}`` dicts) are redacted;
inputs of image models are not touched. ``call.extra["redactions"]`` holds how many of each kind
were masked, for middleware that runs after this one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Generator
from typing import Any

from aikit import PredictCall, hookimpl

__version__ = "0.1.0"
__all__ = ["EMAIL", "PHONE", "aikit_predict", "redact"]

# --8<-- [start:patterns]
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# 7-15 digits with optional separators; not part of a longer word or number, and not an ISO date.
PHONE = re.compile(r"(?<![\w+(])(?!\d{4}-\d{2}-\d{2}\b)\+?\(?\d(?:[ ().-]{0,2}\d){6,14}(?![\w])")
_RULES = (("email", EMAIL, "[EMAIL]"), ("phone", PHONE, "[PHONE]"))


def redact(text: str, counts: Counter[str] | None = None) -> str:
    """``text`` with e-mail addresses and phone numbers masked; ``counts`` (if given) is updated."""
    for kind, pattern, placeholder in _RULES:
        text, n = pattern.subn(placeholder, text)
        if counts is not None and n:
            counts[kind] += n
    return text


# --8<-- [end:patterns]


def _redact_item(item: Any, counts: Counter[str]) -> Any:
    if isinstance(item, str):
        return redact(item, counts)
    if isinstance(item, (list, tuple)) and item and all(isinstance(m, dict) for m in item):
        # A chat conversation: mask each message's content, keep the other fields as they are.
        return [
            {**m, "content": redact(m["content"], counts)} if isinstance(m.get("content"), str) else m for m in item
        ]
    return item  # not text (an image, bytes...): leave it for the task to validate


# --8<-- [start:hook]
@hookimpl(wrapper=True)
def aikit_predict(call: PredictCall) -> Generator[None, list[Any], list[Any]]:
    """Mask personal data in ``call.inputs`` before the prediction runs (text models only)."""
    if call.model.task.input_kind == "text":
        counts: Counter[str] = Counter()
        call.inputs = [_redact_item(item, counts) for item in call.inputs]
        call.extra["redactions"] = dict(counts)
    results = yield  # the rest of the chain runs here: other middleware, then the model
    return results


# --8<-- [end:hook]
