"""transformers' KV-cache argument and output under the name the installed release uses.

transformers 5.24 renamed the ``past_key_values`` argument and output field of its models to
``cache``; the old name still works there but emits a ``FutureWarning`` and goes away in 5.40.
aikit supports every transformers 5 release, so decoding loops and exporters pass and read the cache
through these two helpers instead of naming either spelling.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import Any

__all__ = ["cache_kwargs", "returned_cache"]


@functools.cache
def _argument_name(cls: type) -> str:
    # The class's own forward signature says which name this release understands; inspect follows
    # transformers' decorators (they use functools.wraps) back to the real parameters.
    try:
        parameters = inspect.signature(getattr(cls, "forward")).parameters  # noqa: B009 (any class)
    except (TypeError, ValueError, AttributeError):
        return "past_key_values"
    return "cache" if "cache" in parameters else "past_key_values"


def cache_kwargs(module: Any, cache: Any) -> dict[str, Any]:
    """Keyword arguments that hand ``cache`` to ``module``'s forward (``use_cache=True`` included).

    ``cache`` may be ``None`` (first step: the model creates one). For a wrapper without a
    transformers-style forward the old name is used, which every transformers 5 release accepts.
    """
    cls: type = type(module)
    return {_argument_name(cls): cache, "use_cache": True}


def returned_cache(output: Mapping[str, Any]) -> Any:
    """The KV cache a transformers model returned (``None`` if it returned none).

    Reads the output as a mapping, so neither spelling's deprecated attribute is ever touched.
    """
    cache = output.get("cache")
    return output.get("past_key_values") if cache is None else cache
