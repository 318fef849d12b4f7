"""KV-cached decoding on a plain ``InferenceSession``, yielding one ``(batch,)`` token array per step.

Two graph layouts (see ``aikit_onnxruntime.decoder_export``):

- **shared buffer** (onnxruntime-genai builder, ``GroupQueryAttention``): one preallocated
  ``[1, kv_heads, capacity, head_dim]`` buffer per K and V is bound as both the past input and the
  present output, so nothing is copied per token; the logits go into a preallocated numpy buffer.
  Rows of a batch decode in lockstep, each with its own cache (padding stripped), because the
  fused attention kernel takes right-aligned sequences only.
- **concatenated cache** (aikit's export): the whole left-padded batch runs in one call with
  ``position_ids`` from the attention mask; the ``present`` OrtValues are re-bound as the next
  step's ``past`` without a numpy round trip.

Both follow the torch backend's contract (``aikit_torch.decoding``): greedy decoding is argmax of
the last position's logits, so equal logits give equal tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from aikit.errors import ConfigError
from aikit.options import GenerationOptions

from .sampling import select_next

__all__ = ["DecoderGraph"]

_PAST = re.compile(r"past_key_values\.(\d+)\.(key|value)")


@dataclass(frozen=True)
class _Layout:
    past: list[str]
    present: list[str]
    kv_heads: int
    head_dim: int
    shared: bool
    position_ids: bool
    ids_dtype: Any
    mask_dtype: Any


class DecoderGraph:
    """Drives one decoder session. ``capacity`` bounds prompt + new tokens for shared-buffer graphs."""

    def __init__(self, session: Any, *, kv_heads: int, head_dim: int, shared: bool, capacity: int) -> None:
        import onnxruntime as ort

        self.ort = ort
        self.session = session
        inputs = {i.name: i for i in session.get_inputs()}
        past = sorted((n for n in inputs if _PAST.fullmatch(n)), key=_past_order)
        self.layout = _Layout(
            past=past,
            present=[n.replace("past_key_values", "present") for n in past],
            kv_heads=kv_heads,
            head_dim=head_dim,
            shared=shared,
            position_ids="position_ids" in inputs,
            ids_dtype=np.int64 if "int64" in inputs["input_ids"].type else np.int32,
            mask_dtype=np.int64 if "int64" in inputs["attention_mask"].type else np.int32,
        )
        self.capacity = capacity
        self.vocab = int(session.get_outputs()[0].shape[-1])

    # ------------------------------------------------------------------ full-sequence logits
    def logits(self, input_ids: NDArray[np.int64], attention_mask: NDArray[np.int64]) -> NDArray[np.float32]:
        """Logits for every position of a (padded) batch with an empty cache (quality checks, validation)."""
        lay = self.layout
        if not lay.shared:
            feed = self._prefill_feed(input_ids, attention_mask)
            return self.session.run(["logits"], feed)[0]  # type: ignore[no-any-return]
        out = np.zeros((*input_ids.shape, self.vocab), dtype=np.float32)
        for row in range(input_ids.shape[0]):
            keep = attention_mask[row].astype(bool)
            ids = input_ids[row, keep][None].astype(lay.ids_dtype)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids, dtype=lay.mask_dtype)}
            for name in lay.past:
                feed[name] = np.zeros((1, lay.kv_heads, 0, lay.head_dim), dtype=np.float32)
            out[row, keep] = self.session.run(["logits"], feed)[0][0]
        return out

    def step_logits(self, prompt: NDArray[np.int64]) -> NDArray[np.float32]:
        """Last-position logits of ``prompt`` computed through the cache: prefill all but the last
        token, then one cached step (validates the past/present wiring)."""
        lay = self.layout
        if lay.shared:
            row = _SharedRow(self, prompt[:-1], 1)
            row.run()
            row.advance(int(prompt[-1]))
            return row.run().copy()
        head = prompt[None, :-1].astype(np.int64)
        feed = self._prefill_feed(head, np.ones_like(head))
        presents = self.session.run(lay.present, feed)
        step: dict[str, NDArray[Any]] = {
            "input_ids": prompt[None, -1:].astype(lay.ids_dtype),
            "attention_mask": np.ones((1, len(prompt)), dtype=lay.mask_dtype),
        }
        if lay.position_ids:
            step["position_ids"] = np.asarray([[len(prompt) - 1]], dtype=np.int64)
        step.update(zip(lay.past, presents))
        return self.session.run(["logits"], step)[0][0, -1]  # type: ignore[no-any-return]

    def _prefill_feed(self, ids: NDArray[np.int64], mask: NDArray[np.int64]) -> dict[str, NDArray[Any]]:
        lay = self.layout
        feed: dict[str, NDArray[Any]] = {
            "input_ids": ids.astype(lay.ids_dtype),
            "attention_mask": mask.astype(lay.mask_dtype),
        }
        if lay.position_ids:
            feed["position_ids"] = np.clip(mask.cumsum(-1) - 1, 0, None).astype(np.int64)
        for name in lay.past:
            feed[name] = np.zeros((ids.shape[0], lay.kv_heads, 0, lay.head_dim), dtype=np.float32)
        return feed

    # ------------------------------------------------------------------ generation
    def generate(
        self, input_ids: NDArray[np.int64], attention_mask: NDArray[np.int64], options: GenerationOptions
    ) -> Iterator[NDArray[np.int64]]:
        """Yield ``options.max_new_tokens`` steps of ``(batch,)`` token ids (the caller stops early)."""
        rng = np.random.default_rng(options.seed)
        history = [[int(t) for t in row[m.astype(bool)]] for row, m in zip(input_ids, attention_mask)]
        if self.layout.shared:
            prompt_len = int(attention_mask.sum(axis=1).max())
            if prompt_len + options.max_new_tokens > self.capacity:
                raise ConfigError(
                    f"prompt ({prompt_len} tokens) + max_new_tokens ({options.max_new_tokens}) exceeds the "
                    f"exported decoder's context of {self.capacity} tokens; shorten the prompt or "
                    "load with backend_options={'max_length': N}"
                )
            return self._generate_shared(input_ids, attention_mask, options, rng, history)
        return self._generate_concat(input_ids, attention_mask, options, rng, history)

    def _generate_concat(
        self,
        ids: NDArray[np.int64],
        mask: NDArray[np.int64],
        options: GenerationOptions,
        rng: np.random.Generator,
        history: list[list[int]],
    ) -> Iterator[NDArray[np.int64]]:
        lay = self.layout
        binding = self.session.io_binding()
        feed = self._prefill_feed(ids, mask)
        for name, value in feed.items():
            binding.bind_cpu_input(name, value)
        for name in ["logits", *lay.present]:
            binding.bind_output(name, "cpu")
        mask = feed["attention_mask"]
        position = np.clip(mask.cumsum(-1) - 1, 0, None)[:, -1:].astype(np.int64)
        try:
            for step in range(options.max_new_tokens):
                self.session.run_with_iobinding(binding)
                outputs = binding.get_outputs()
                logits = outputs[0].numpy()[:, -1, :]
                token = select_next(logits, history, options, rng)
                yield token
                if step == options.max_new_tokens - 1:
                    return
                for row, t in enumerate(token.tolist()):
                    history[row].append(t)
                for name, value in zip(lay.past, outputs[1:]):
                    binding.bind_ortvalue_input(name, value)
                mask = np.concatenate([mask, np.ones((mask.shape[0], 1), dtype=mask.dtype)], axis=1)
                position = position + 1
                binding.bind_cpu_input("input_ids", token[:, None].astype(lay.ids_dtype))
                binding.bind_cpu_input("attention_mask", mask)
                if lay.position_ids:
                    binding.bind_cpu_input("position_ids", position)
                binding.clear_binding_outputs()
                for name in ["logits", *lay.present]:
                    binding.bind_output(name, "cpu")
        finally:
            binding.clear_binding_inputs()
            binding.clear_binding_outputs()

    def _generate_shared(
        self,
        ids: NDArray[np.int64],
        mask: NDArray[np.int64],
        options: GenerationOptions,
        rng: np.random.Generator,
        history: list[list[int]],
    ) -> Iterator[NDArray[np.int64]]:
        rows = [_SharedRow(self, ids[r, mask[r].astype(bool)], options.max_new_tokens) for r in range(ids.shape[0])]
        for step in range(options.max_new_tokens):
            logits = np.stack([row.run() for row in rows])
            token = select_next(logits, history, options, rng)
            yield token
            if step == options.max_new_tokens - 1:
                return
            for r, t in enumerate(token.tolist()):
                history[r].append(t)
                rows[r].advance(t)


class _SharedRow:
    """One sequence's preallocated cache and bindings on a shared-buffer (GQA) graph."""

    def __init__(self, graph: DecoderGraph, prompt: NDArray[np.int64], new_tokens: int) -> None:
        ort, lay = graph.ort, graph.layout
        self.graph = graph
        capacity = len(prompt) + new_tokens
        self.binding = graph.session.io_binding()
        self.cache = [
            ort.OrtValue.ortvalue_from_numpy(np.zeros((1, lay.kv_heads, capacity, lay.head_dim), dtype=np.float32))
            for _ in lay.past
        ]
        for past, present, value in zip(lay.past, lay.present, self.cache):
            self.binding.bind_ortvalue_input(past, value)
            self.binding.bind_ortvalue_output(present, value)
        self.mask = np.ones((1, capacity), dtype=lay.mask_dtype)
        self.ids = prompt[None].astype(lay.ids_dtype)
        self.step_ids = np.zeros((1, 1), dtype=lay.ids_dtype)
        self.total = len(prompt)
        self.logits = {len(prompt): np.empty((1, len(prompt), graph.vocab), dtype=np.float32)}
        self.logits[1] = np.empty((1, 1, graph.vocab), dtype=np.float32)

    def run(self) -> NDArray[np.float32]:
        b = self.binding
        b.bind_cpu_input("input_ids", self.ids)
        b.bind_cpu_input("attention_mask", self.mask[:, : self.total])
        out = self.logits[self.ids.shape[1]]
        b.bind_output("logits", "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
        self.graph.session.run_with_iobinding(b)
        last: NDArray[np.float32] = out[0, -1]
        return last

    def advance(self, token: int) -> None:
        self.step_ids[0, 0] = token
        self.ids = self.step_ids
        self.total += 1


def _past_order(name: str) -> tuple[int, str]:
    match = _PAST.fullmatch(name)
    assert match is not None
    return int(match.group(1)), match.group(2)
