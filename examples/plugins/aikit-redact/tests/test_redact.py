"""Tests of the aikit-redact plugin, written as a plugin author would, with ``aikit.testing``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Generator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import aikit_redact
import numpy as np
import pytest

import aikit
from aikit.testing import MockBackend, fresh_host


# --8<-- [start:unit]
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe@example.com today", "write to [EMAIL] today"),
        ("call +44 20 7946 0958 or (555) 123-4567.", "call [PHONE] or [PHONE]."),
        ("we met on 2024-05-01 in room 42", "we met on 2024-05-01 in room 42"),
        ("order 12345 shipped", "order 12345 shipped"),
    ],
)
def test_redact_masks_emails_and_phone_numbers(text: str, expected: str) -> None:
    assert aikit_redact.redact(text) == expected


# --8<-- [end:unit]


def test_redact_counts_what_it_masked() -> None:
    counts: Counter[str] = Counter()
    aikit_redact.redact("a@b.io, c@d.io, +1 202 555 0143", counts)
    assert counts == {"email": 2, "phone": 1}


def test_the_package_declares_its_entry_point() -> None:
    found = entry_points(group="aikit", name="redact")
    assert found, "aikit-redact is not installed: run `pip install -e .` in its folder first"
    (ep,) = found
    assert ep.value == "aikit_redact"
    assert ep.load() is aikit_redact


# --8<-- [start:end-to-end]
def test_the_model_only_sees_redacted_text(tiny_model_dir: Callable[[str], Path]) -> None:
    with fresh_host(aikit_redact):  # the installed plugins plus this one (added once)
        model = aikit.Model.load(tiny_model_dir("bert-embedding"))
        raw = model.predict("mail alice at alice@example.com")
        masked = model.predict("mail alice at [EMAIL]")
    np.testing.assert_array_equal(raw.vector, masked.vector)


# --8<-- [end:end-to-end]


def test_without_the_plugin_the_address_reaches_the_model(tiny_model_dir: Callable[[str], Path]) -> None:
    # The counter-test: the equality above holds only because the plugin ran.
    with fresh_host() as host:
        host.remove_plugin("redact")
        model = aikit.Model.load(tiny_model_dir("bert-embedding"))
        raw = model.predict("mail alice at alice@example.com")
        masked = model.predict("mail alice at [EMAIL]")
    assert not np.array_equal(raw.vector, masked.vector)


# --8<-- [start:mock-backend]
class _UseMockBackend:
    """A throw-away plugin registering aikit's MockBackend, which records every batch it runs."""

    @aikit.hookimpl
    def aikit_register_backends(self, register: Callable[[type[aikit.Backend]], None]) -> None:
        register(MockBackend)


class _Spy:
    """Innermost middleware (``trylast``): sees the inputs exactly as the model will."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.extra: dict[str, Any] = {}

    @aikit.hookimpl(wrapper=True, trylast=True)
    def aikit_predict(self, call: aikit.PredictCall) -> Generator[None, list[Any], list[Any]]:
        self.seen = list(call.inputs)
        self.extra = dict(call.extra)
        return (yield)


def test_chat_messages_and_batches_are_redacted(tiny_model_dir: Callable[[str], Path]) -> None:
    spy = _Spy()
    with fresh_host(aikit_redact, _UseMockBackend(), spy):
        model = aikit.Model.load(tiny_model_dir("llama-causal-lm"), backend="mock")
        conversation = [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "my phone is 555-123-4567, mail bob@example.com"},
        ]
        result = model.predict(conversation, max_new_tokens=2)
    assert isinstance(result, aikit.Generation)
    assert spy.seen == [[conversation[0], {"role": "user", "content": "my phone is [PHONE], mail [EMAIL]"}]]
    assert spy.extra["redactions"] == {"phone": 1, "email": 1}
    # The mock backend received the token ids of the redacted prompt, not of the original one.
    tokenizer = model.parts.tokenizer
    prompt = tokenizer.apply_chat_template(spy.seen[0], add_generation_prompt=True, tokenize=False)
    assert isinstance(model.backend, MockBackend)
    assert model.backend.calls[0]["input_ids"][0].tolist() == tokenizer(prompt, add_special_tokens=False)["input_ids"]


# --8<-- [end:mock-backend]


def test_a_streamed_chat_prompt_is_redacted_before_the_model_sees_it(tiny_model_dir: Callable[[str], Path]) -> None:
    # Model.stream runs the same aikit_predict chain: the plugin needs no streaming code of its own.
    spy = _Spy()
    conversation = [{"role": "user", "content": "mail bob@example.com or call 555-123-4567"}]
    with fresh_host(aikit_redact, _UseMockBackend(), spy):
        model = aikit.Model.load(tiny_model_dir("llama-causal-lm"), backend="mock")
        pieces = list(model.stream(conversation, max_new_tokens=3))
    redacted = [{"role": "user", "content": "mail [EMAIL] or call [PHONE]"}]
    assert spy.seen == [redacted]
    assert spy.extra["redactions"] == {"email": 1, "phone": 1}
    tokenizer = model.parts.tokenizer
    prompt = tokenizer.apply_chat_template(redacted, add_generation_prompt=True, tokenize=False)
    assert isinstance(model.backend, MockBackend)
    assert model.backend.calls[0]["input_ids"][0].tolist() == tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert "".join(pieces) == model.predict(redacted, max_new_tokens=3).text


def test_image_inputs_pass_untouched(tiny_model_dir: Callable[[str], Path]) -> None:
    spy = _Spy()
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    with fresh_host(aikit_redact, spy):
        model = aikit.Model.load(tiny_model_dir("vit-image-classification"))
        model.predict([image])
    assert spy.seen[0] is image
    assert "redactions" not in spy.extra
