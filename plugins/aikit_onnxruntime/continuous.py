"""``OrtStepDecoder``: continuous batching on aikit's concatenated-cache decoder graphs.

Sequences of different lengths share one left-padded batch: each row's cache is aligned to the
right, the attention mask marks the padding, and ``position_ids`` count each row's own tokens,
so a row computes what it would compute alone. A new sequence's prompt is prefilled on its own
(batch of one) and its cache is padded into the batch; a finished row is cut out, and columns
that only padding uses any more are dropped. Between joins and leaves the ``present`` outputs
are bound as the next step's ``past`` inputs without a numpy round trip.

``SharedStepDecoder`` does the same for shared-buffer graphs (``GroupQueryAttention``, from
onnxruntime-genai's builder, which is what ONNX Runtime runs for Llama-family models and GGUF
files): one preallocated ``[rows, kv_heads, capacity, head_dim]`` buffer per K and V holds every
sequence's cache from position 0 (right padding), the attention mask gives each row its own
length, and the fused kernel writes each row's new key and value at that row's length, so rows
of different lengths decode in one call with no padding computed. Rows stay dense: a leaving
row's place is taken by the last row (one copy of that row's cache).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from typing_extensions import override

from aikit.contracts.backend import StepDecoder
from aikit.contracts.options import GenerationOptions
from aikit.contracts.sampling import is_plain_greedy, new_rng, select_next
from aikit.errors import ConfigError
from aikit_onnxruntime.decoder import DecoderGraph
from aikit_onnxruntime.gguf.decode import DECODE_INPUT

__all__ = ["OrtStepDecoder", "SharedStepDecoder", "step_decoder_for"]

# The shared buffers grow in steps of this many positions, and of at least this many rows.
_CAPACITY_STEP = 256
_MIN_ROWS = 4


@dataclass
class _Row:
    slot: int
    options: GenerationOptions
    rng: np.random.Generator
    history: list[int]  # prompt and generated tokens (repetition penalty)
    position: int  # position id of the row's next token
    next_token: int
    seen: list[int] = field(default_factory=list)


def step_decoder_for(graph: DecoderGraph) -> StepDecoder:
    """The continuous-batching decoder for ``graph``'s layout."""
    return SharedStepDecoder(graph) if graph.layout.shared else OrtStepDecoder(graph, capacity=graph.capacity)


def _check_fits(prompt_ids: Sequence[int], options: GenerationOptions, capacity: int) -> None:
    if not prompt_ids:
        raise ConfigError("a prompt must hold at least one token")
    if len(prompt_ids) + options.max_new_tokens > capacity:
        raise ConfigError(
            f"prompt ({len(prompt_ids)} tokens) + max_new_tokens ({options.max_new_tokens}) exceeds the "
            f"exported decoder's context of {capacity} tokens; shorten the prompt or lower max_new_tokens"
        )


def _select(logits: NDArray[np.float32], rows: Sequence[_Row]) -> list[int]:
    """Each row's next token under its own options (greedy rows share one argmax)."""
    if all(is_plain_greedy(r.options) for r in rows):
        return [int(t) for t in np.argmax(logits, axis=-1)]
    return [int(select_next(logits[i : i + 1], [r.history], r.options, r.rng)[0]) for i, r in enumerate(rows)]


def _run_head(graph: DecoderGraph, binding: Any, batch: int, length: int, rows: Sequence[_Row]) -> list[int]:
    """Bind the head's inputs and the logits output on ``binding`` (everything else is bound), run
    it, and return each row's next token, chosen from the last position's logits (written in place
    into a numpy buffer, not copied out)."""
    if graph.keeps_last:  # the output head runs on the last position only
        binding.bind_cpu_input(DECODE_INPUT, np.asarray([1], dtype=np.int64))
    kept = 1 if graph.keeps_last else length
    logits = np.empty((batch, kept, graph.vocab), dtype=np.float32)
    binding.bind_output("logits", "cpu", 0, np.float32, list(logits.shape), logits.ctypes.data)
    graph.session.run_with_iobinding(binding)
    return _select(logits[:, -1, :], rows)


def _advance(rows: Sequence[_Row], tokens: Sequence[int]) -> dict[int, int]:
    """Record each row's new token (the input of its next step); ``{slot: token}``."""
    for row, token in zip(rows, tokens, strict=True):
        row.position += 1
        row.next_token = token
    return {row.slot: row.next_token for row in rows}


def _index_of(rows: Sequence[_Row], slot: int) -> int | None:
    return next((i for i, r in enumerate(rows) if r.slot == slot), None)


def _new_row(slot: int, prompt_ids: Sequence[int], options: GenerationOptions) -> _Row:
    return _Row(
        slot=slot,
        options=options,
        rng=new_rng(options),
        history=[int(t) for t in prompt_ids],
        position=len(prompt_ids),
        next_token=0,
    )


class OrtStepDecoder(StepDecoder):
    """Continuous batching over one ``DecoderGraph`` whose cache is concatenated (not shared).

    ``capacity`` bounds each sequence's prompt plus new tokens (the exported context).
    """

    def __init__(self, graph: DecoderGraph, *, capacity: int) -> None:
        if graph.layout.shared:
            raise ConfigError("continuous batching needs a concatenated-cache graph, not a shared-buffer one")
        self.graph = graph
        self.capacity = capacity
        self._rows: list[_Row] = []
        self._mask: NDArray[np.int64] = np.zeros((0, 0), dtype=np.int64)
        self._past: list[Any] = []  # numpy arrays (after a join/leave) or OrtValues (after a step)
        self._next_slot = 0

    @property
    @override
    def active(self) -> int:
        return len(self._rows)

    # ------------------------------------------------------------------ join
    @override
    def join(self, prompt_ids: Sequence[int], options: GenerationOptions) -> tuple[int, int]:
        lay, session = self.graph.layout, self.graph.session
        _check_fits(prompt_ids, options, self.capacity)
        ids = np.asarray([list(prompt_ids)], dtype=np.int64)
        feed: dict[str, Any] = {
            "input_ids": ids.astype(lay.ids_dtype),
            "attention_mask": np.ones_like(ids, lay.mask_dtype),
        }
        if lay.position_ids:
            feed["position_ids"] = np.arange(ids.shape[1], dtype=np.int64)[None]
        for name in lay.past:
            feed[name] = np.zeros((1, lay.kv_heads, 0, lay.head_dim), dtype=np.float32)
        binding = session.io_binding()
        for name, value in feed.items():
            binding.bind_cpu_input(name, value)
        for name in lay.present:
            binding.bind_output(name, "cpu")
        row = _new_row(self._next_slot, prompt_ids, options)
        self._next_slot += 1
        row.next_token = _run_head(self.graph, binding, 1, ids.shape[1], [row])[0]
        present = [v.numpy() for v in binding.get_outputs()[: len(lay.present)]]
        self._merge(row, present, ids.shape[1])
        return row.slot, row.next_token

    def _merge(self, row: _Row, present: list[NDArray[np.float32]], length: int) -> None:
        """Pad the batch or the new cache on the left so both are as wide, and append the row."""
        past = self._numpy_past()
        if not self._rows:
            self._past, self._mask = list(present), np.ones((1, length), dtype=np.int64)
            self._rows = [row]
            return
        width = max(self._mask.shape[1], length)
        grow, pad = width - self._mask.shape[1], width - length
        self._mask = np.concatenate(
            [
                np.pad(self._mask, ((0, 0), (grow, 0))),
                np.pad(np.ones((1, length), dtype=np.int64), ((0, 0), (pad, 0))),
            ]
        )
        self._past = [
            np.concatenate(
                [np.pad(old, ((0, 0), (0, 0), (grow, 0), (0, 0))), np.pad(new, ((0, 0), (0, 0), (pad, 0), (0, 0)))]
            )
            for old, new in zip(past, present, strict=True)
        ]
        self._rows.append(row)

    # ------------------------------------------------------------------ step
    @override
    def step(self) -> dict[int, int]:
        if not self._rows:
            return {}
        lay, session = self.graph.layout, self.graph.session
        for row in self._rows:
            row.history.append(row.next_token)
        self._mask = np.concatenate([self._mask, np.ones((len(self._rows), 1), dtype=np.int64)], axis=1)
        binding = session.io_binding()
        binding.bind_cpu_input("input_ids", np.asarray([[r.next_token] for r in self._rows], dtype=lay.ids_dtype))
        binding.bind_cpu_input("attention_mask", self._mask.astype(lay.mask_dtype, copy=False))
        if lay.position_ids:
            binding.bind_cpu_input("position_ids", np.asarray([[r.position] for r in self._rows], dtype=np.int64))
        for name, value in zip(lay.past, self._past, strict=True):
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
            else:
                binding.bind_ortvalue_input(name, value)
        for name in lay.present:
            binding.bind_output(name, "cpu")
        tokens = _run_head(self.graph, binding, len(self._rows), 1, self._rows)
        self._past = list(binding.get_outputs()[: len(lay.present)])  # OrtValues: bound as they are next step
        return _advance(self._rows, tokens)

    # ------------------------------------------------------------------ leave
    @override
    def leave(self, slot: int) -> None:
        index = _index_of(self._rows, slot)
        if index is None:
            return
        keep = [i for i in range(len(self._rows)) if i != index]
        del self._rows[index]
        if not self._rows:
            self._past, self._mask = [], np.zeros((0, 0), dtype=np.int64)
            return
        mask = self._mask[keep]
        first = int(np.argmax(mask.any(axis=0)))  # columns before it hold only padding now
        self._mask = mask[:, first:]
        self._past = [np.ascontiguousarray(p[keep][:, :, first:]) for p in self._numpy_past()]

    def _numpy_past(self) -> list[NDArray[np.float32]]:
        return [p if isinstance(p, np.ndarray) else p.numpy() for p in self._past]


class SharedStepDecoder(StepDecoder):
    """Continuous batching over one shared-buffer (``GroupQueryAttention``) ``DecoderGraph``."""

    def __init__(self, graph: DecoderGraph) -> None:
        if not graph.layout.shared:
            raise ConfigError("SharedStepDecoder needs a shared-buffer graph")
        import onnxruntime as ort

        self.ort = ort
        self.graph = graph
        self.capacity = graph.capacity
        self._rows: list[_Row] = []
        self._lengths: list[int] = []  # tokens in each row's cache
        self._cache: list[NDArray[np.float32]] = []  # one [rows, kv_heads, capacity, head_dim] per past input
        self._next_slot = 0
        self._binding: tuple[tuple[int | None, int | None], Any] | None = None  # (rows, binding) until a reserve

    @property
    @override
    def active(self) -> int:
        return len(self._rows)

    def _reserve(self, rows: int, positions: int) -> None:
        """Make the buffers hold ``rows`` rows of ``positions`` positions, keeping what they hold."""
        lay = self.graph.layout
        have_rows, have_pos = (self._cache[0].shape[0], self._cache[0].shape[2]) if self._cache else (0, 0)
        if rows <= have_rows and positions <= have_pos:
            return
        new_rows = max(rows, have_rows, _MIN_ROWS) if rows <= have_rows else max(2 * have_rows, rows, _MIN_ROWS)
        new_pos = max(have_pos, min(self.capacity, -(-positions // _CAPACITY_STEP) * _CAPACITY_STEP))
        shape = (new_rows, lay.kv_heads, new_pos, lay.head_dim)
        grown = [np.zeros(shape, dtype=np.float32) for _ in lay.past]
        used = len(self._rows)
        for old, new in zip(self._cache, grown):
            new[:used, :, :have_pos] = old[:used]
        self._cache = grown
        self._binding = None  # it points into the old buffers

    def _next_tokens(self, ids: NDArray[Any], mask: NDArray[Any], rows: slice, owners: Sequence[_Row]) -> list[int]:
        """Run ``ids`` for the buffer rows ``rows`` (bound in place as past and present); the next
        token of each of ``owners`` (the rows' sequences) from the last position.

        The cache bindings of a slice are kept until the buffers are reallocated or another slice
        runs (the steps between two joins or leaves reuse them), so a step binds only its ids and
        mask anew."""
        graph = self.graph
        lay, session = graph.layout, graph.session
        key = (rows.start, rows.stop)
        if self._binding is None or self._binding[0] != key:
            binding = session.io_binding()
            for past, present, cache in zip(lay.past, lay.present, self._cache, strict=True):
                value = self.ort.OrtValue.ortvalue_from_numpy(cache[rows])  # a view: the kernel writes in place
                binding.bind_ortvalue_input(past, value)
                binding.bind_ortvalue_output(present, value)
            self._binding = (key, binding)
        binding = self._binding[1]
        binding.bind_cpu_input("input_ids", ids.astype(lay.ids_dtype, copy=False))
        binding.bind_cpu_input("attention_mask", mask.astype(lay.mask_dtype, copy=False))
        return _run_head(graph, binding, ids.shape[0], ids.shape[1], owners)

    @override
    def join(self, prompt_ids: Sequence[int], options: GenerationOptions) -> tuple[int, int]:
        _check_fits(prompt_ids, options, self.capacity)
        index = len(self._rows)
        self._reserve(index + 1, len(prompt_ids) + options.max_new_tokens)
        for cache in self._cache:
            cache[index] = 0.0  # a previous occupant's keys must not show through
        ids = np.asarray([list(prompt_ids)], dtype=np.int64)
        row = _new_row(self._next_slot, prompt_ids, options)
        self._next_slot += 1
        row.next_token = self._next_tokens(ids, np.ones_like(ids), slice(index, index + 1), [row])[0]
        self._rows.append(row)
        self._lengths.append(len(prompt_ids))
        return row.slot, row.next_token

    @override
    def step(self) -> dict[int, int]:
        if not self._rows:
            return {}
        count = len(self._rows)
        need = max(self._lengths) + 1
        self._reserve(count, need)
        mask = np.zeros((count, need), dtype=np.int64)
        for r, length in enumerate(self._lengths):
            mask[r, : length + 1] = 1  # each row's own length: the kernel appends at it
        for row in self._rows:
            row.history.append(row.next_token)
        ids = np.asarray([[r.next_token] for r in self._rows], dtype=np.int64)
        tokens = self._next_tokens(ids, mask, slice(0, count), self._rows)
        self._lengths = [length + 1 for length in self._lengths]
        return _advance(self._rows, tokens)

    @override
    def leave(self, slot: int) -> None:
        index = _index_of(self._rows, slot)
        if index is None:
            return
        last = len(self._rows) - 1
        if index != last:  # keep rows dense: the last row moves into the freed place
            length = self._lengths[last]
            for cache in self._cache:
                cache[index, :, :length] = cache[last, :, :length]
            self._rows[index], self._lengths[index] = self._rows[last], self._lengths[last]
        self._rows.pop()
        self._lengths.pop()
