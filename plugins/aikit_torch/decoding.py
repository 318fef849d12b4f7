"""A KV-cached decoding loop over any transformers causal or seq2seq model, yielding token ids.

It mirrors ``transformers.generate`` for greedy decoding (same forward calls, same argmax, so
the same tokens) while letting aikit stream, stop on its own conditions, and share one loop
between the CPU and CUDA backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from aikit.contracts.options import GenerationOptions
from aikit.contracts.sampling import is_plain_greedy, new_rng
from aikit.contracts.sampling import select_next as shared_select_next
from aikit.errors import BackendError

from .kv_cache import cache_kwargs, returned_cache
from .modules import decoder_start_token_id


def select_next(
    logits: torch.Tensor, history: torch.Tensor, options: GenerationOptions, rng: np.random.Generator
) -> torch.Tensor:
    """The next token per row of ``(batch, vocab)`` logits, as ``aikit.contracts.sampling.select_next``
    chooses it. Plain greedy stays on the logits' device (an argmax, the same first-maximum rule);
    anything else moves the rows to numpy for the shared implementation."""
    if is_plain_greedy(options):
        return torch.argmax(logits, dim=-1)
    rows = logits.float().cpu().numpy()
    chosen = shared_select_next(rows, history.cpu().tolist(), options, rng)
    return torch.from_numpy(chosen).to(logits.device)


def decode(
    module: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, options: GenerationOptions
) -> Iterator[NDArray[np.int64]]:
    """Yield one ``(batch,)`` array of new token ids per step, up to ``options.max_new_tokens``.

    ``input_ids`` are left-padded for decoder-only models (right-padded for seq2seq).
    """
    generator = new_rng(options)
    config = getattr(module, "config", None)
    if config is None:
        raise BackendError("text generation needs a transformers model with a config")
    with torch.inference_mode():
        if getattr(config, "is_encoder_decoder", False):
            yield from _decode_seq2seq(module, input_ids, attention_mask, options, generator)
        else:
            yield from _decode_causal(module, input_ids, attention_mask, options, generator)


def _decode_causal(
    module: Any, input_ids: torch.Tensor, mask: torch.Tensor, options: GenerationOptions, generator: np.random.Generator
) -> Iterator[NDArray[np.int64]]:
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = module(input_ids=input_ids, attention_mask=mask, position_ids=positions, **cache_kwargs(module, None))
    past = returned_cache(out)
    position = positions[:, -1:]
    history = input_ids
    for step in range(options.max_new_tokens):
        token = select_next(out.logits[:, -1, :], history, options, generator)
        yield token.cpu().numpy().astype(np.int64)
        if step == options.max_new_tokens - 1:
            return
        token = token[:, None]
        history = torch.cat([history, token], dim=1)
        mask = torch.cat([mask, torch.ones_like(token)], dim=1)
        position = position + 1
        out = module(input_ids=token, attention_mask=mask, position_ids=position, **cache_kwargs(module, past))
        past = returned_cache(out)


def _decode_seq2seq(
    module: Any, input_ids: torch.Tensor, mask: torch.Tensor, options: GenerationOptions, generator: np.random.Generator
) -> Iterator[NDArray[np.int64]]:
    start = decoder_start_token_id(module)
    if start is None:
        raise BackendError("this seq2seq model's config has no decoder_start_token_id")
    encoder_outputs = module.get_encoder()(input_ids=input_ids, attention_mask=mask)
    token = torch.full((input_ids.shape[0], 1), int(start), dtype=torch.long, device=input_ids.device)
    history = token
    past = None
    for _ in range(options.max_new_tokens):
        out = module(
            encoder_outputs=encoder_outputs,
            attention_mask=mask,
            decoder_input_ids=token,
            **cache_kwargs(module, past),
        )
        past = returned_cache(out)
        chosen = select_next(out.logits[:, -1, :], history, options, generator)
        yield chosen.cpu().numpy().astype(np.int64)
        token = chosen[:, None]
        history = torch.cat([history, token], dim=1)
