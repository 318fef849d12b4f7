"""``text-generation`` (decoder LLMs, chat templates) and ``text2text-generation`` (seq2seq)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from typing_extensions import override

from aikit.contracts.backend import Backend
from aikit.contracts.options import GenerationOptions
from aikit.contracts.parts import ModelParts
from aikit.contracts.results import Generation
from aikit.contracts.task import CHARS_PER_TOKEN_BOUND, Example, Task, TokenSequence
from aikit.errors import ConfigError, InputError, TruncationWarning

from ._text import as_text, model_limit, pad_id

Messages = list[dict[str, str]]


def _is_messages(item: Any) -> bool:
    return isinstance(item, (list, tuple)) and bool(item) and all(isinstance(m, dict) for m in item)


def _validate_messages(item: Any, index: int) -> Messages:
    messages: Messages = []
    for m in item:
        role, content = m.get("role"), m.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise InputError("each chat message needs string 'role' and 'content' fields", index=index)
        messages.append({"role": role, "content": content})
    return messages


def eos_ids(parts: ModelParts) -> set[int]:
    """Token ids that end generation, from the tokenizer, config and generation config."""
    ids: set[int] = set()
    sources = [getattr(parts.tokenizer, "eos_token_id", None), getattr(parts.config, "eos_token_id", None)]
    gen_config = getattr(parts.module, "generation_config", None) or parts.extras.get("generation_config")
    sources.append(getattr(gen_config, "eos_token_id", None) if gen_config is not None else None)
    sources.append(parts.task_state.get("eos_token_ids"))
    for value in sources:
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):  # task_state comes from a manifest: keep only integers
            ids.update(int(v) for v in value if isinstance(v, int))
    return ids


class _Decoder:
    """Consumes per-step token arrays for a batch; tracks stopping and text."""

    def __init__(self, tokenizer: Any, batch: int, eos: set[int], options: GenerationOptions) -> None:
        self.tokenizer = tokenizer
        self.eos = eos
        self.stop = options.stop
        self.tokens: list[list[int]] = [[] for _ in range(batch)]
        self.finished: list[str | None] = [None] * batch

    def feed(self, step: NDArray[np.int64]) -> bool:
        """Record one step; return True when every sequence has finished."""
        for b, token in enumerate(step.tolist()):
            if self.finished[b] is not None:
                continue
            if token in self.eos:
                self.finished[b] = "stop"
                continue
            self.tokens[b].append(int(token))
            # Look in the raw text: ``text()`` has already cut the stop string out.
            if self.stop and any(s in self._raw(b) for s in self.stop):
                self.finished[b] = "stop"
        return all(f is not None for f in self.finished)

    def _raw(self, b: int) -> str:
        text: str = self.tokenizer.decode(self.tokens[b], skip_special_tokens=True)
        return text

    def text(self, b: int) -> str:
        """Sequence ``b``'s text, cut before the first stop string."""
        text = self._raw(b)
        for s in self.stop:
            cut = text.find(s)
            if cut >= 0:
                text = text[:cut]
        return text

    def result(self, b: int) -> Generation:
        return Generation(
            text=self.text(b), token_ids=tuple(self.tokens[b]), finish_reason=self.finished[b] or "length"
        )


class TextSequence(TokenSequence):
    """One prompt of a ``TextGeneration`` task decoded token by token (see ``TokenSequence``).

    The pieces ``feed`` returns are what ``TextGeneration.stream`` yields: text held back while it
    ends in an incomplete UTF-8 sequence, cut before a stop string.
    """

    def __init__(self, task: TextGeneration, example: Example, options: GenerationOptions) -> None:
        self.task = task
        self.example = example
        self.options = options
        self._decoder = _Decoder(task.parts.tokenizer, 1, task.eos, options)
        self._steps = 0
        self._sent = ""

    @override
    def prompt_ids(self) -> list[int]:
        return self.task._prompt_ids(self.example, self.options)

    @override
    def feed(self, token: int) -> tuple[str, bool]:
        self._steps += 1
        done = self._decoder.feed(np.asarray([token], dtype=np.int64)) or self._steps >= self.options.max_new_tokens
        text = self._decoder.text(0)
        # Hold back an incomplete UTF-8 sequence (decoded as U+FFFD) until it completes, unless done.
        if (done or not text.endswith("\ufffd")) and len(text) > len(self._sent) and text.startswith(self._sent):
            piece, self._sent = text[len(self._sent) :], text
            return piece, done
        return "", done

    @override
    def result(self) -> Generation:
        return self._decoder.result(0)


class TextGeneration(Task):
    """A prompt (string) or a conversation (list of ``{"role", "content"}`` dicts) in, text out.

    Strings go through the model's chat template as a user message when it has one (set
    ``chat_template=False`` for raw completion). Decoding is greedy unless ``do_sample=True``.
    Prompts longer than the context keep their last tokens, with a ``TruncationWarning``;
    ``max_new_tokens`` must leave room for the prompt in the context (``ConfigError`` otherwise).
    """

    name = "text-generation"
    aliases: ClassVar[tuple[str, ...]] = ("chat", "causal-lm")
    description = "decoder LLMs: prompts or chats in, generated text out"
    hf_auto_class = "AutoModelForCausalLM"
    architecture_suffixes: ClassVar[tuple[str, ...]] = ("ForCausalLM",)
    generative = True
    chat = True
    default_metrics = ("exact_match",)
    metrics_without_references = ("perplexity",)
    options_class = GenerationOptions
    default_batch_size = 8
    left_padding = True

    def __init__(self, parts: ModelParts) -> None:
        super().__init__(parts)
        self.eos = eos_ids(parts)
        self._warned = False

    @override
    def is_batch(self, inputs: Any) -> bool:
        if _is_messages(inputs):
            return False
        return isinstance(inputs, (list, tuple))

    @override
    def preprocess(self, items: Sequence[Any], *, max_length: int | None) -> list[Example]:
        examples = []
        for i, item in enumerate(items):
            value: Any = _validate_messages(item, i) if _is_messages(item) else as_text(item, i)
            size = sum(len(m["content"]) for m in value) if isinstance(value, list) else len(value)
            examples.append(
                Example(index=i, length=size, features={}, meta={"prompt": value, "max_length": max_length})
            )
        return examples

    def _prompt_ids(self, example: Example, options: GenerationOptions) -> list[int]:
        tok = self.parts.tokenizer
        if tok is None:
            raise InputError("this model has no tokenizer, so it cannot take text prompts", index=example.index)
        prompt = example.meta["prompt"]
        limit = model_limit(tok, self.parts.config, example.meta.get("max_length"))
        if limit is not None:
            if options.max_new_tokens >= limit:
                raise ConfigError(
                    f"max_new_tokens={options.max_new_tokens} does not fit this model's context of {limit} "
                    f"tokens, which must also hold the prompt; use at most {limit - 1}"
                )
            # Only the last tokens are kept, so never tokenize more text than can hold them (bounded time).
            bound = limit * CHARS_PER_TOKEN_BOUND
            if isinstance(prompt, str):
                prompt = prompt[-bound:]
            else:
                prompt = [{**m, "content": m["content"][-bound:]} for m in prompt]
        has_template = bool(getattr(tok, "chat_template", None))
        use_template = isinstance(prompt, list) or (options.chat_template is not False and has_template)
        if use_template:
            if not has_template:
                raise InputError(
                    "this model has no chat template, so it cannot take a message list", index=example.index
                )
            messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
            rendered = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            ids = tok(rendered, add_special_tokens=False)["input_ids"]
        else:
            ids = tok(prompt)["input_ids"]
        if limit is not None:
            room = max(1, limit - options.max_new_tokens)
            if len(ids) > room:
                ids = ids[-room:]
                if not self._warned:
                    self._warned = True
                    warnings.warn(
                        f"a prompt was longer than the {room} tokens left for it; its start was dropped",
                        TruncationWarning,
                        stacklevel=5,
                    )
        if not ids:
            raise InputError("the prompt encodes to no tokens", index=example.index)
        return list(ids)

    def _batch_arrays(self, ids: list[list[int]]) -> dict[str, NDArray[Any]]:
        width = max(len(x) for x in ids)
        batch = np.full((len(ids), width), pad_id(self.parts.tokenizer), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, x in enumerate(ids):
            if self.left_padding:
                batch[row, width - len(x) :] = x
                mask[row, width - len(x) :] = 1
            else:
                batch[row, : len(x)] = x
                mask[row, : len(x)] = 1
        return {"input_ids": batch, "attention_mask": mask}

    @override
    def postprocess(self, outputs: dict[str, NDArray[Any]], examples: Sequence[Example], options: Any) -> list[Any]:
        raise NotImplementedError("generation results come from run_batch")

    @override
    def run_batch(self, backend: Backend, examples: Sequence[Example], options: Any) -> list[Any]:
        opts: GenerationOptions = options or GenerationOptions()
        arrays = self._batch_arrays([self._prompt_ids(e, opts) for e in examples])
        decoder = _Decoder(self.parts.tokenizer, len(examples), self.eos, opts)
        steps = backend.generate(arrays, opts)
        try:
            for step in steps:
                if decoder.feed(step):
                    break
        finally:
            close = getattr(steps, "close", None)
            if close is not None:
                close()
        return [decoder.result(b) for b in range(len(examples))]

    @override
    def stream(self, backend: Backend, example: Example, options: Any) -> Iterator[str]:
        sequence = self.open_sequence(example, options)
        arrays = self._batch_arrays([sequence.prompt_ids()])
        steps = backend.generate(arrays, sequence.options)
        try:
            for step in steps:
                piece, done = sequence.feed(int(step[0]))
                if piece:
                    yield piece
                if done:
                    break
        finally:
            close = getattr(steps, "close", None)
            if close is not None:
                close()

    @override
    def open_sequence(self, example: Example, options: Any) -> TextSequence:
        return TextSequence(self, example, options or GenerationOptions())

    @override
    def quality_outputs(self, outputs: dict[str, NDArray[Any]]) -> NDArray[Any]:
        return outputs["logits"]


class Text2TextGeneration(TextGeneration):
    """Sequence-to-sequence models (T5, BART...): text in, new text out (summaries, translations)."""

    name = "text2text-generation"
    chat = False  # an encoder-decoder takes one input text, not a chat template
    aliases = ("summarization", "translation", "seq2seq")
    description = "encoder-decoder models: text in, generated text out"
    hf_auto_class = "AutoModelForSeq2SeqLM"
    architecture_suffixes = ()
    left_padding = False
    default_batch_size = 8

    @classmethod
    @override
    def matches(cls, parts: ModelParts) -> bool:
        return bool(getattr(parts.config, "is_encoder_decoder", False))

    @override
    def is_batch(self, inputs: Any) -> bool:
        return isinstance(inputs, (list, tuple))

    @override
    def preprocess(self, items: Sequence[Any], *, max_length: int | None) -> list[Example]:
        return [
            Example(index=i, length=len(t), features={}, meta={"prompt": t, "max_length": max_length})
            for i, t in enumerate(as_text(item, i) for i, item in enumerate(items))
        ]

    @override
    def _prompt_ids(self, example: Example, options: GenerationOptions) -> list[int]:
        tok = self.parts.tokenizer
        if tok is None:
            raise InputError("this model has no tokenizer, so it cannot take text", index=example.index)
        limit = model_limit(tok, self.parts.config, example.meta.get("max_length"))
        prompt = example.meta["prompt"]
        if limit is not None:  # truncation keeps the start: tokenize no more text than can fill it
            prompt = prompt[: limit * CHARS_PER_TOKEN_BOUND]
            if options.max_new_tokens > limit:  # bounded time: the decoder gets the encoder's budget
                raise ConfigError(
                    f"max_new_tokens={options.max_new_tokens} exceeds this model's limit of {limit} tokens"
                )
        enc = tok(prompt, truncation=limit is not None, max_length=limit)
        if getattr(enc, "encodings", None) and enc.encodings[0].overflowing and not self._warned:
            self._warned = True
            warnings.warn(f"an input was longer than {limit} tokens and was truncated", TruncationWarning, stacklevel=5)
        return list(enc["input_ids"])
