"""Greedy / sampled decoding with a preallocated ``transformers.StaticCache``.

Every decoding step then has the same shapes (one token per row, a cache of fixed length, a
fixed-length attention mask), so the step can be compiled once and replayed as a CUDA graph.
The prompt (prefill) runs eagerly because its length varies. Token choice is shared with the
CPU backend's loop (``aikit_torch.decoding.select_next``), so greedy output is the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from aikit_torch.decoding import select_next
from aikit_torch.kv_cache import cache_kwargs
from numpy.typing import NDArray

from aikit.contracts.options import GenerationOptions
from aikit.contracts.sampling import new_rng

__all__ = ["StaticCachePool", "decode_static", "supports_static_cache"]

Step = Callable[..., Any]


def supports_static_cache(module: Any) -> bool:
    """Whether ``module`` is a decoder-only transformers model that transformers can run with a static cache."""
    config = getattr(module, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return False
    # Sliding-window layers keep shorter caches than the one mask buffer decode_static builds.
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None and any(t != "full_attention" for t in layer_types):
        return False
    if layer_types is None and getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return False
    return bool(getattr(module, "_can_compile_fullgraph", False))


class StaticCachePool:
    """Keeps the last ``StaticCache`` so that calls of the same batch size and length bucket reuse its
    tensors (a compiled step is specialised to their addresses; a new cache would recompile)."""

    def __init__(self, bucket: int) -> None:
        self.bucket = bucket
        self._key: tuple[int, int] | None = None
        self._cache: Any = None
        self._in_use = False

    def length_for(self, needed: int) -> int:
        return -(-needed // self.bucket) * self.bucket

    def acquire(self, module: Any, batch: int, needed: int) -> tuple[Any, int, bool]:
        """A reset cache holding at least ``needed`` positions for ``batch`` rows, its length, and whether
        it is the pooled one (only the pooled cache may run through a compiled step)."""
        from transformers import StaticCache

        key = (batch, self.length_for(needed))
        if self._in_use:  # an unfinished generator still holds the pooled cache: use a private one
            return StaticCache(config=module.config, max_cache_len=key[1]), key[1], False
        if key != self._key:
            self._cache, self._key = StaticCache(config=module.config, max_cache_len=key[1]), key
        else:
            self._cache.reset()
        self._in_use = True
        return self._cache, key[1], True

    def release(self, cache: Any) -> None:
        if cache is self._cache:
            self._in_use = False


def decode_static(
    module: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    options: GenerationOptions,
    *,
    pool: StaticCachePool,
    step: Step | None = None,
) -> Iterator[NDArray[np.int64]]:
    """Yield one ``(batch,)`` array of new token ids per step; ``input_ids`` are left-padded.

    ``step`` runs the one-token decoding forward (a compiled ``module.forward``); None runs ``module``.
    """
    generator = new_rng(options)
    batch, prompt = input_ids.shape
    with torch.inference_mode():  # the pooled cache's tensors were made in inference mode; reset them there
        cache, length, pooled = pool.acquire(module, batch, prompt + options.max_new_tokens)
    run_step = step if (step is not None and pooled) else module
    try:
        with torch.inference_mode():
            # One mask buffer as long as the cache: position i is 1 once a real token sits there.
            mask = torch.zeros((batch, length), dtype=attention_mask.dtype, device=attention_mask.device)
            mask[:, :prompt] = attention_mask
            positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
            out = module(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=positions,
                logits_to_keep=1,
                **cache_kwargs(module, cache),
            )
            position = positions[:, -1:]
            history = input_ids
            for index in range(options.max_new_tokens):
                token = select_next(out.logits[:, -1, :], history, options, generator)
                yield token.cpu().numpy().astype(np.int64)
                if index == options.max_new_tokens - 1:
                    return
                token = token[:, None]
                history = torch.cat([history, token], dim=1)
                mask[:, prompt + index] = 1
                position = position + 1
                out = run_step(
                    input_ids=token, attention_mask=mask, position_ids=position, **cache_kwargs(module, cache)
                )
    finally:
        pool.release(cache)
