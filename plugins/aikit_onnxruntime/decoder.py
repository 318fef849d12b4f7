"""KV-cached decoding on a plain ``InferenceSession``, yielding one ``(batch,)`` token array per step.

Two graph layouts (see ``aikit_onnxruntime.export.decoder``):

- **shared buffer** (onnxruntime-genai builder, ``GroupQueryAttention``): one preallocated
  ``[rows, kv_heads, capacity, head_dim]`` buffer per K and V is bound as both the past input and
  the present output, so nothing is copied per token; outputs go into preallocated numpy buffers.
  Each prompt is prefilled alone (padding stripped: the fused attention kernel takes no padding
  inside a prompt), then every step runs all rows in one call, the attention mask giving each row
  its own length (``_SharedBatch``). Speculative decoding runs row by row.
- **concatenated cache** (aikit's export): the whole left-padded batch runs in one call with
  ``position_ids`` from the attention mask; the ``present`` OrtValues are re-bound as the next
  step's ``past`` without a numpy round trip.

Both follow the torch backend's contract (``aikit_torch.decoding``): greedy decoding is argmax of
the last position's logits, so equal logits give equal tokens.

Graphs written by :func:`aikit_onnxruntime.gguf.decode.add_decode_head` (aikit's GGUF-native graphs) also take
``num_logits_to_keep``: prefill runs the output head on the last position only. Per token the
shared-buffer loop binds one new attention-mask view; the token-id input, the caches and the
logits buffer stay bound, and the next token is chosen from that buffer in place (plain greedy: one
``numpy.argmax``).

``speculative="prompt-lookup"`` (greedy, shared-buffer graphs): each row looks up the latest
earlier occurrence of the n-gram that ends its text (3, then 2 tokens) and feeds the token it
still owes the cache plus up to ``draft_tokens`` tokens that followed that occurrence in one call;
the graph's greedy choice at every position decides how many drafts are kept, and the cache length
is set back past the rest (their entries are overwritten by the next call). Every emitted token is
the graph's own argmax given the tokens before it, as in plain decoding. That holds when a
position's logits do not depend on how many positions the call holds (beyond float32 summation
order); graphs whose kernels quantize activations per call (:func:`lookup_blocker`) do not, so
there prompt lookup is declined with a warning and decoding runs one token per step.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from aikit.contracts.options import GenerationOptions
from aikit.contracts.sampling import new_rng, select_next
from aikit.errors import ConfigError
from aikit_onnxruntime.gguf.decode import DECODE_INPUT

logger = logging.getLogger("aikit.onnxruntime")

__all__ = ["DecoderGraph", "lookup_blocker"]

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

    def __init__(
        self,
        session: Any,
        *,
        kv_heads: int,
        head_dim: int,
        shared: bool,
        capacity: int,
        graph_path: Path | None = None,
    ) -> None:
        """``graph_path``: the graph file ``session`` runs, read (without its weights) the first time
        prompt lookup is asked for, to see whether it can be exact there (:func:`lookup_blocker`);
        without it prompt lookup is not offered."""
        import onnxruntime as ort

        self.ort = ort
        self.session = session
        self.graph_path = graph_path
        inputs = {i.name: i for i in session.get_inputs()}
        outputs = {o.name: o for o in session.get_outputs()}
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
        self.vocab = int(outputs["logits"].shape[-1])
        self.keeps_last = DECODE_INPUT in inputs  # the head can run on the last n positions only

    # ------------------------------------------------------------------ full-sequence logits
    def logits(self, input_ids: NDArray[np.int64], attention_mask: NDArray[np.int64]) -> NDArray[np.float32]:
        """Logits for every position of a (padded) batch with an empty cache (quality checks, validation)."""
        lay = self.layout
        if not lay.shared:
            feed = self._prefill_feed(input_ids, attention_mask, keep=input_ids.shape[1])
            return self.session.run(["logits"], feed)[0]  # type: ignore[no-any-return]
        out = np.zeros((*input_ids.shape, self.vocab), dtype=np.float32)
        for row in range(input_ids.shape[0]):
            keep = attention_mask[row].astype(bool)
            ids = input_ids[row, keep][None].astype(lay.ids_dtype)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids, dtype=lay.mask_dtype)}
            if self.keeps_last:
                feed[DECODE_INPUT] = np.asarray([ids.shape[1]], dtype=np.int64)
            for name in lay.past:
                feed[name] = np.zeros((1, lay.kv_heads, 0, lay.head_dim), dtype=np.float32)
            out[row, keep] = self.session.run(["logits"], feed)[0][0]
        return out

    def step_logits(self, prompt: NDArray[np.int64]) -> NDArray[np.float32]:
        """Last-position logits of ``prompt`` computed through the cache: prefill all but the last
        token, then one cached step (validates the past/present wiring)."""
        lay = self.layout
        if lay.shared:
            row = _SharedRow(self, len(prompt) + 1)
            row.logits(prompt[:-1], last=True)
            last: NDArray[np.float32] = row.logits(prompt[-1:], last=True)[-1].copy()
            return last
        head = prompt[None, :-1].astype(np.int64)
        feed = self._prefill_feed(head, np.ones_like(head), keep=1)
        presents = self.session.run(lay.present, feed)
        step: dict[str, NDArray[Any]] = {
            "input_ids": prompt[None, -1:].astype(lay.ids_dtype),
            "attention_mask": np.ones((1, len(prompt)), dtype=lay.mask_dtype),
        }
        if lay.position_ids:
            step["position_ids"] = np.asarray([[len(prompt) - 1]], dtype=np.int64)
        if self.keeps_last:
            step[DECODE_INPUT] = np.ones(1, dtype=np.int64)
        step.update(zip(lay.past, presents))
        return self.session.run(["logits"], step)[0][0, -1]  # type: ignore[no-any-return]

    def _prefill_feed(self, ids: NDArray[np.int64], mask: NDArray[np.int64], *, keep: int) -> dict[str, NDArray[Any]]:
        lay = self.layout
        feed: dict[str, NDArray[Any]] = {
            "input_ids": ids.astype(lay.ids_dtype),
            "attention_mask": mask.astype(lay.mask_dtype),
        }
        if lay.position_ids:
            feed["position_ids"] = np.clip(mask.cumsum(-1) - 1, 0, None).astype(np.int64)
        if self.keeps_last:
            feed[DECODE_INPUT] = np.asarray([keep], dtype=np.int64)
        for name in lay.past:
            feed[name] = np.zeros((ids.shape[0], lay.kv_heads, 0, lay.head_dim), dtype=np.float32)
        return feed

    # ------------------------------------------------------------------ generation
    def generate(
        self, input_ids: NDArray[np.int64], attention_mask: NDArray[np.int64], options: GenerationOptions
    ) -> Iterator[NDArray[np.int64]]:
        """Yield ``options.max_new_tokens`` steps of ``(batch,)`` token ids (the caller stops early).

        ``options.speculative`` is honoured on shared-buffer graphs; elsewhere decoding runs one
        token per step, which gives the same tokens.
        """
        rng = new_rng(options)
        history = [[int(t) for t in row[m.astype(bool)]] for row, m in zip(input_ids, attention_mask)]
        if self.layout.shared:
            prompt_len = int(attention_mask.sum(axis=1).max())
            if prompt_len + options.max_new_tokens > self.capacity:
                raise ConfigError(
                    f"prompt ({prompt_len} tokens) + max_new_tokens ({options.max_new_tokens}) exceeds the "
                    f"exported decoder's context of {self.capacity} tokens; shorten the prompt or "
                    "load with backend_options={'max_length': N}"
                )
            if options.speculative is not None and self._lookup_allowed():
                return self._generate_lookup(history, options)
            return self._generate_shared(history, options, rng)
        return self._generate_concat(input_ids, attention_mask, options, rng, history)

    def _lookup_allowed(self) -> bool:
        """Whether prompt lookup is exact on this graph (see :func:`lookup_blocker`)."""
        return self._lookup_refusal is None

    @functools.cached_property
    def _lookup_refusal(self) -> str | None:
        """Why prompt lookup is declined on this graph, or ``None``; read from the graph file once, with
        one warning when it is declined."""
        if self.graph_path is None:
            reason: str | None = "its graph file is not known, so it cannot be checked"
        else:
            try:
                reason = lookup_blocker(self.graph_path)
            except OSError as exc:  # e.g. the cache entry was removed under the open session
                reason = f"its graph file cannot be read to check it ({exc})"
        if reason is not None:
            logger.warning(
                "speculative='prompt-lookup' is off for %s: %s; decoding one token per step instead "
                "(the text a plain greedy decode gives)",
                self.graph_path.name if self.graph_path is not None else "this graph",
                reason,
            )
        return reason

    def _generate_concat(
        self,
        ids: NDArray[np.int64],
        mask: NDArray[np.int64],
        options: GenerationOptions,
        rng: np.random.Generator,
        history: list[list[int]],
    ) -> Iterator[NDArray[np.int64]]:
        lay = self.layout
        outputs_wanted = ["logits", *lay.present]
        binding = self.session.io_binding()
        feed = self._prefill_feed(ids, mask, keep=1)
        for name, value in feed.items():
            binding.bind_cpu_input(name, value)
        for name in outputs_wanted:
            binding.bind_output(name, "cpu")
        mask = feed["attention_mask"]
        position = np.clip(mask.cumsum(-1) - 1, 0, None)[:, -1:].astype(np.int64)
        try:
            for step in range(options.max_new_tokens):
                self.session.run_with_iobinding(binding)
                outputs = binding.get_outputs()
                token = select_next(outputs[0].numpy()[:, -1, :], history, options, rng)
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
                for name in outputs_wanted:
                    binding.bind_output(name, "cpu")
        finally:
            binding.clear_binding_inputs()
            binding.clear_binding_outputs()

    def _generate_shared(
        self, history: list[list[int]], options: GenerationOptions, rng: np.random.Generator
    ) -> Iterator[NDArray[np.int64]]:
        """Each prompt is prefilled alone (the fused attention takes no padding inside a prompt); then
        every step runs all rows in one call, each at its own length (``_SharedBatch``)."""
        batch = _SharedBatch(self, max(len(h) for h in history) + options.max_new_tokens, len(history))
        first = np.empty((len(history), self.vocab), dtype=np.float32)
        for r, (h, row) in enumerate(zip(history, batch.rows)):
            first[r] = row.logits(h, last=True)[-1]
            batch.joined(r)
        token = select_next(first, history, options, rng)
        for step in range(options.max_new_tokens):
            yield token.copy()
            if step == options.max_new_tokens - 1:
                return
            for r, t in enumerate(token.tolist()):
                history[r].append(t)
            token = select_next(batch.step(token)[:, -1], history, options, rng)

    def _generate_lookup(self, history: list[list[int]], options: GenerationOptions) -> Iterator[NDArray[np.int64]]:
        """Greedy decoding with prompt-lookup drafts checked in one call per row (see the module doc).

        A call over more than one position costs about 2-2.5 single steps here (ONNX Runtime's 4-bit
        kernel has a fast path for one row only), so drafts must mostly be right to pay: a row drafts
        only from a repeated n-gram of at least ``_MIN_NGRAM`` tokens, and after a check that kept
        fewer than two drafts it waits ``_BACKOFF`` times longer (1, 2, 4, ... up to 32 steps) before
        drafting again. None of this changes which tokens come out, only how many calls it takes.
        """
        k = options.draft_tokens
        rows = [_SharedRow(self, len(h) + options.max_new_tokens + k) for h in history]
        queues: list[deque[int]] = []
        for h, row in zip(history, rows):  # prefill: the first token comes from the prompt alone
            queues.append(deque([int(row.tokens(h, last=True)[-1])]))
        wait = [0] * len(rows)  # steps before a row drafts again
        backoff = [0] * len(rows)
        token = np.zeros(len(rows), dtype=np.int64)
        for step in range(options.max_new_tokens):
            for r, row in enumerate(rows):
                if not queues[r]:
                    seq = history[r]  # its last token is emitted but not yet in the cache
                    room = min(k, row.capacity - row.total - 1)
                    draft = prompt_lookup(seq, room, min_ngram=_MIN_NGRAM) if room > 0 and wait[r] == 0 else []
                    wait[r] = max(0, wait[r] - 1)
                    out = row.tokens([seq[-1], *draft], last=not draft)
                    kept = 0
                    while kept < len(draft) and draft[kept] == out[kept]:
                        kept += 1
                    row.total -= len(draft) - kept  # roll the cache back past the rejected drafts
                    queues[r].extend(int(t) for t in out[: kept + 1])
                    if draft:
                        backoff[r] = 0 if kept >= 2 else min(max(1, 2 * backoff[r]), _BACKOFF)
                        wait[r] = backoff[r]
                token[r] = queues[r].popleft()
            yield token.copy()
            if step == options.max_new_tokens - 1:
                return
            for r, t in enumerate(token.tolist()):
                history[r].append(t)


_MIN_NGRAM = 2  # a single repeated token predicts the next one too rarely to pay for a check
_BACKOFF = 32


# Operators that quantize activations with ranges taken over the whole call (every position of
# every row): a position's result then depends on what else the call holds.
_PER_CALL_QUANTIZERS = ("DynamicQuantizeLinear", "DynamicQuantizeMatMul")


def lookup_blocker(path: Path) -> str | None:
    """Why prompt lookup could change the greedy text of the graph at ``path``, or ``None`` when it cannot.

    Checking drafts runs several positions in one call where plain decoding runs one, so lookup is
    exact only when a position's logits do not depend on the call's size beyond float32 summation
    order. Two kinds of node break that: activations quantized with one range per call
    (``DynamicQuantizeLinear``, ``DynamicQuantizeMatMul``: ``ort-int8-dynamic`` and the per-tensor
    nodes of ``ort-int8-rows``), and ``MatMulNBits`` at an ``accuracy_level`` of 2 or more, which rounds
    activations to float16 / bfloat16 / int8 inside the kernel: the float32 differences between a
    one- and a multi-position call (summation order, 6.5e-5 in SmolLM2's logits at level 0) then tip
    roundings by whole steps. On the packaged SmolLM2's ``accuracy_level=4`` graph a position's logits
    moved by up to 1.2 between a one- and a two-position call, and prompt lookup's text left plain
    decoding's after 37-47 of 64 tokens on three of four prompts.
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    found: dict[str, int] = {}
    for node in graph.node:
        kind = node.op_type
        if node.op_type == "MatMulNBits":
            level = next((int(a.i) for a in node.attribute if a.name == "accuracy_level"), 0)
            if level < 2:
                continue
            kind = f"MatMulNBits at accuracy_level={level}"
        elif node.op_type not in _PER_CALL_QUANTIZERS:
            continue
        found[kind] = found.get(kind, 0) + 1
    if not found:
        return None
    nodes = ", ".join(f"{n} {kind}" for kind, n in sorted(found.items()))
    return (
        f"its kernels quantize activations per call ({nodes}), so checking drafts several positions at a "
        "time could change the greedy text"
    )


def prompt_lookup(seq: Sequence[int], k: int, *, max_ngram: int = 3, min_ngram: int = 1) -> list[int]:
    """Up to ``k`` tokens that followed the latest earlier occurrence of the n-gram ending ``seq``
    (``max_ngram`` tokens down to ``min_ngram``); empty when none recurs."""
    arr = np.asarray(seq, dtype=np.int64)
    size = arr.shape[0]
    for n in range(min(max_ngram, size - 1), min_ngram - 1, -1):
        tail = arr[size - n :]
        # candidate starts i < size - n whose n tokens equal the tail, latest first
        hits = np.flatnonzero(arr[: size - n] == tail[0])
        for i in hits[::-1]:
            if i + n < size and np.array_equal(arr[i : i + n], tail):
                follow = arr[i + n : i + n + k]
                if follow.size:
                    return [int(t) for t in follow]
    return []


class _SharedRow:
    """One sequence's preallocated cache and bindings on a shared-buffer (GQA) graph.

    ``total`` counts the tokens in the cache; setting it lower rolls the cache back (the next call
    overwrites the entries past it). The caches, the one-token input and the logits buffer (one per
    number of rows returned) are bound once and reused; per call only a new attention-mask view (and,
    for more than one input token, a new id array) is bound.
    """

    def __init__(self, graph: DecoderGraph, capacity: int, cache: Sequence[NDArray[np.float32]] = ()) -> None:
        ort, lay = graph.ort, graph.layout
        self.graph = graph
        self.capacity = capacity
        self.binding = graph.session.io_binding()
        # ``cache``: this row's [1, kv_heads, capacity, head_dim] views of a batch's buffers (written in place)
        arrays = list(cache) or [
            np.zeros((1, lay.kv_heads, capacity, lay.head_dim), dtype=np.float32) for _ in lay.past
        ]
        self.cache = [ort.OrtValue.ortvalue_from_numpy(a) for a in arrays]
        for past, present, value in zip(lay.past, lay.present, self.cache):
            self.binding.bind_ortvalue_input(past, value)
            self.binding.bind_ortvalue_output(present, value)
        self.mask = np.ones((1, capacity), dtype=lay.mask_dtype)
        self.total = 0
        self.one = np.zeros((1, 1), dtype=lay.ids_dtype)  # the decode step's input, updated in place
        self._one = ort.OrtValue.ortvalue_from_numpy(self.one)
        self._keep = {n: ort.OrtValue.ortvalue_from_numpy(np.asarray([n], dtype=np.int64)) for n in (1,)}
        self._out: dict[int, tuple[NDArray[np.float32], Any]] = {}
        self._bound: int | None = None

    def logits(self, ids: Sequence[int] | NDArray[np.int64], *, last: bool) -> NDArray[np.float32]:
        """Feed ``ids`` after the cache; the logits of the last position (``last``) or of every fed one.

        The result is a view of the bound buffer: the next call overwrites it."""
        graph, b, n = self.graph, self.binding, len(ids)
        total = self.total + n
        if total > self.capacity:
            raise ConfigError(f"the decoder's cache holds {self.capacity} tokens; this step needs {total}")
        if n == 1:
            self.one[0, 0] = ids[0]
            b.bind_ortvalue_input("input_ids", self._one)
        else:
            b.bind_cpu_input("input_ids", np.asarray(ids, dtype=graph.layout.ids_dtype)[None])
        b.bind_cpu_input("attention_mask", self.mask[:, :total])
        rows = n
        if graph.keeps_last:
            rows = 1 if last else n
            keep = self._keep.get(rows)
            if keep is None:
                keep = self._keep[rows] = graph.ort.OrtValue.ortvalue_from_numpy(np.asarray([rows], dtype=np.int64))
            b.bind_ortvalue_input(DECODE_INPUT, keep)
        if self._bound != rows:
            out = self._out.get(rows)
            if out is None:
                array = np.empty((1, rows, graph.vocab), dtype=np.float32)
                out = self._out[rows] = (array, graph.ort.OrtValue.ortvalue_from_numpy(array))
            b.bind_ortvalue_output("logits", out[1])
            self._bound = rows
        graph.session.run_with_iobinding(b)
        self.total = total
        result: NDArray[np.float32] = self._out[rows][0][0]
        return result

    def tokens(self, ids: Sequence[int] | NDArray[np.int64], *, last: bool) -> NDArray[np.int64]:
        """As :meth:`logits`, but the greedy token at those positions (the first index of the maximum)."""
        tokens: NDArray[np.int64] = np.argmax(self.logits(ids, last=last), axis=-1).astype(np.int64)
        return tokens


class _SharedBatch:
    """Rows decoding together on a shared-buffer graph: one ``[rows, kv_heads, capacity, head_dim]``
    buffer per cache input, each row's prompt prefilled alone through a :class:`_SharedRow` over its
    slice, then one call per step for all rows. The attention mask gives each row its own length
    (ones up to it, zeros after): ``GroupQueryAttention`` appends each row's new key and value at
    that row's length and attends to that many positions only, so rows of different lengths need no
    padding inside the cache.
    """

    def __init__(self, graph: DecoderGraph, capacity: int, rows: int) -> None:
        ort, lay = graph.ort, graph.layout
        self.graph = graph
        buffers = [np.zeros((rows, lay.kv_heads, capacity, lay.head_dim), dtype=np.float32) for _ in lay.past]
        self.rows = [_SharedRow(graph, capacity, [b[r : r + 1] for b in buffers]) for r in range(rows)]
        self.binding = graph.session.io_binding()
        for past, present, buffer in zip(lay.past, lay.present, buffers):
            value = ort.OrtValue.ortvalue_from_numpy(buffer)
            self.binding.bind_ortvalue_input(past, value)
            self.binding.bind_ortvalue_output(present, value)
        self.buffers = buffers  # the OrtValues above point into these: keep them alive
        self.mask = np.zeros((rows, capacity), dtype=lay.mask_dtype)
        self.ids = np.zeros((rows, 1), dtype=lay.ids_dtype)
        self.binding.bind_ortvalue_input("input_ids", ort.OrtValue.ortvalue_from_numpy(self.ids))
        if graph.keeps_last:
            self.keep = np.ones(1, dtype=np.int64)
            self.binding.bind_ortvalue_input(DECODE_INPUT, ort.OrtValue.ortvalue_from_numpy(self.keep))
        self.logits = np.empty((rows, 1, graph.vocab), dtype=np.float32)  # written in place by every step
        self.binding.bind_ortvalue_output("logits", ort.OrtValue.ortvalue_from_numpy(self.logits))

    def joined(self, r: int) -> None:
        """Row ``r``'s prompt is in its cache: its mask covers it."""
        self.mask[r, : self.rows[r].total] = 1

    def step(self, tokens: NDArray[np.int64]) -> NDArray[np.float32]:
        """Feed one token per row after its cache; the ``[rows, 1, vocab]`` logits (a bound buffer, reused)."""
        graph, b = self.graph, self.binding
        for r, row in enumerate(self.rows):
            if row.total >= row.capacity:
                raise ConfigError(f"the decoder's cache holds {row.capacity} tokens; this step needs more")
            self.mask[r, row.total] = 1
            row.total += 1
        self.ids[:, 0] = tokens
        width = max(row.total for row in self.rows)
        b.bind_cpu_input("attention_mask", np.ascontiguousarray(self.mask[:, :width]))
        graph.session.run_with_iobinding(b)
        return self.logits


def _past_order(name: str) -> tuple[int, str]:
    match = _PAST.fullmatch(name)
    assert match is not None
    return int(match.group(1)), match.group(2)
