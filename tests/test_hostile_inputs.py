"""Hostile and malformed inputs to every task's ``predict``: a valid result or a clear aikit error.

Property-based (hypothesis) over tiny real models, one per task, loaded once for the module. The
contract checked everywhere (``outcome``):

- a list of n inputs gives n results of the task's result type, in order; ``[]`` gives ``[]``;
- otherwise ``InputError`` whose ``index`` names an offending item, or ``ConfigError`` for options;
- never another exception type, never a warning other than ``TruncationWarning``;
- bounded time: hypothesis' ``deadline`` fails any example that runs away (a hang detector with
  a generous margin for a busy CI machine, not a speed assertion).

Documented valid results for edge cases: an empty string is a valid input for every text task
(the model sees only its special tokens); a string of whitespace likewise.
"""

from __future__ import annotations

import dataclasses
import io
import math
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import aikit
from aikit.testing import save_tiny_model

# Every option text generation accepts, straight from its options dataclass.
GENERATION_OPTIONS = [f.name for f in dataclasses.fields(aikit.GenerationOptions)]

BOUNDED = settings(
    max_examples=20,
    deadline=timedelta(seconds=20),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    derandomize=True,  # the same examples on every run: CI failures reproduce
    database=None,
)
TEXT_KINDS = {
    "bert-embedding": ("feature-extraction", aikit.Embedding),
    "bert-sequence-classification": ("text-classification", aikit.Classification),
    "bert-token-classification": ("token-classification", aikit.TokenTags),
    "llama-causal-lm": ("text-generation", aikit.Generation),
    "t5-seq2seq": ("text2text-generation", aikit.Generation),
}
IMAGE_KINDS = {"vit": aikit.Classification, "cnn": aikit.Classification}
GENERATIVE = ("llama-causal-lm", "t5-seq2seq")
FAST: dict[str, Any] = {"max_new_tokens": 2}  # keeps generation examples short; hostile values override it


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, aikit.Model]:
    """One tiny model per task (and a plain-PyTorch CNN with an ImagePreprocess)."""
    import torch

    from aikit.testing.tiny import TinyCNN

    root = tmp_path_factory.mktemp("hostile")
    out = {
        kind: aikit.Model.load(save_tiny_model(root / kind, kind), task=task, threads=1)
        for kind, (task, _) in TEXT_KINDS.items()
    }
    out["vit"] = aikit.Model.load(save_tiny_model(root / "vit", "vit-image-classification"), threads=1)
    torch.manual_seed(0)
    out["cnn"] = aikit.Model.from_module(
        TinyCNN(), task="image-classification", preprocess=aikit.ImagePreprocess(size=(8, 8), grayscale=True), threads=1
    )
    return out


def result_type(kind: str) -> type:
    return TEXT_KINDS[kind][1] if kind in TEXT_KINDS else IMAGE_KINDS[kind]


def outcome(model: aikit.Model, kind: str, inputs: list[Any], **options: Any) -> str:
    """Run ``predict`` and check the contract; return ``"ok"``, ``"input-error"`` or ``"config-error"``."""
    if kind in GENERATIVE:
        options = {**FAST, **options}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            results = model.predict(inputs, **options)
        except aikit.InputError as exc:
            assert exc.index is not None and 0 <= exc.index < len(inputs), f"InputError without a valid index: {exc}"
            assert str(exc).startswith(f"input {exc.index}: ")
            return "input-error"
        except aikit.ConfigError as exc:
            assert str(exc), "a ConfigError must say what was wrong"
            return "config-error"
    stray = [w for w in caught if not issubclass(w.category, aikit.TruncationWarning)]
    assert not stray, [f"{w.category.__name__}: {w.message}" for w in stray]
    assert isinstance(results, list) and len(results) == len(inputs)
    assert all(isinstance(r, result_type(kind)) for r in results), results
    for r in results:
        check_finite(r)
    return "ok"


def check_finite(result: Any) -> None:
    if isinstance(result, aikit.Embedding):
        assert np.isfinite(result.vector).all()
    elif isinstance(result, aikit.Classification):
        assert math.isfinite(result.score) and 0.0 <= result.score <= 1.0
    elif isinstance(result, aikit.TokenTags):
        assert all(0 <= e.start <= e.end and math.isfinite(e.score) for e in result.entities)
    elif isinstance(result, aikit.Generation):
        assert isinstance(result.text, str) and result.finish_reason in ("stop", "length")


def plain_text(item: Any) -> bool:
    """Whether ``item`` is an input every text task must accept (valid Unicode str or UTF-8 bytes)."""
    if isinstance(item, str):
        return not any(0xD800 <= ord(c) <= 0xDFFF for c in item)
    if isinstance(item, bytes):
        try:
            item.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    return False


# ------------------------------------------------------------------ text tasks

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=120)
words = st.lists(
    st.sampled_from(["good", "bad", "movie", "paris", "john", "the", ".", "?", "zzz", "日本", "😀"]), max_size=60
).map(" ".join)
anything = st.one_of(
    texts,
    words,
    st.binary(max_size=64),
    st.integers(),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.lists(st.text(max_size=5), max_size=3),
    st.just("\ud800 lone surrogate"),
    st.just(float("nan")),
    st.builds(lambda: np.array([np.nan, np.inf])),
)


@pytest.mark.parametrize("kind", list(TEXT_KINDS))
def test_empty_list_gives_empty_list(models: dict[str, aikit.Model], kind: str) -> None:
    assert models[kind].predict([]) == []


@pytest.mark.parametrize("kind", list(TEXT_KINDS))
def test_empty_and_blank_strings_are_valid_inputs(models: dict[str, aikit.Model], kind: str) -> None:
    assert outcome(models[kind], kind, ["", " ", "\n\t", "\x00"]) == "ok"


@pytest.mark.parametrize("kind", list(TEXT_KINDS))
def test_any_list_of_strings_gives_one_result_each(models: dict[str, aikit.Model], kind: str) -> None:
    @BOUNDED
    @given(st.lists(st.one_of(texts, words), max_size=4))
    def check(items: list[str]) -> None:
        assert outcome(models[kind], kind, items) == "ok"

    check()


@pytest.mark.parametrize("kind", list(TEXT_KINDS))
def test_any_item_gives_a_result_or_an_input_error_naming_it(models: dict[str, aikit.Model], kind: str) -> None:
    @BOUNDED
    @given(st.lists(anything, min_size=1, max_size=4))
    def check(items: list[Any]) -> None:
        got = outcome(models[kind], kind, items)
        if all(plain_text(x) for x in items):
            assert got == "ok"
        else:
            assert got == "input-error"

    check()


@pytest.mark.parametrize("kind", list(TEXT_KINDS))
def test_a_bad_item_is_named_by_its_index(models: dict[str, aikit.Model], kind: str) -> None:
    items: list[Any] = ["good", "bad movie", b"\xff\xfe not utf-8", "fine"]
    with pytest.raises(aikit.InputError, match=r"^input 2: bytes are not valid UTF-8") as info:
        models[kind].predict(items, **(FAST if kind in GENERATIVE else {}))
    assert info.value.index == 2
    with pytest.raises(aikit.InputError, match=r"^input 1: .*lone surrogate"):
        models[kind].predict(["ok", "a\udc80b"], **(FAST if kind in GENERATIVE else {}))


@pytest.mark.parametrize("kind", list(TEXT_KINDS))
def test_wrong_top_level_types_are_input_errors(models: dict[str, aikit.Model], kind: str) -> None:
    for value in (None, 42, 3.5, {"text": "x"}, object(), np.zeros(3)):
        with pytest.raises(aikit.InputError, match="^input 0: "):
            models[kind].predict(value, **(FAST if kind in GENERATIVE else {}))


@pytest.mark.parametrize("kind", list(TEXT_KINDS))
def test_very_long_input_is_truncated_with_a_warning_in_bounded_work(
    tmp_path_factory: pytest.TempPathFactory, models: dict[str, aikit.Model], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 24 MB string: the tokenizer never sees more than the model can use, and one warning says so."""
    shared = models[kind]
    model = aikit.Model(
        task=type(shared.task)(shared.parts), backend=shared.backend, parts=shared.parts
    )  # fresh warning state
    tokenizer = model.parts.tokenizer
    seen: list[int] = []
    real_call = type(tokenizer).__call__

    def spy(self: Any, text: Any = None, *args: Any, **kwargs: Any) -> Any:
        seen.append(max((len(t) for t in text), default=0) if isinstance(text, list) else len(text or ""))
        return real_call(self, text, *args, **kwargs)

    monkeypatch.setattr(type(tokenizer), "__call__", spy)
    huge = "good movie " * 2_200_000
    with pytest.warns(aikit.TruncationWarning, match="truncated|dropped"):
        result = model.predict([huge, "short"], **(FAST if kind in GENERATIVE else {}))
    assert len(result) == 2 and all(isinstance(r, result_type(kind)) for r in result)
    limit = tokenizer.model_max_length
    assert seen and max(seen) <= limit * 32 + 200, f"the tokenizer was given {max(seen)} characters"


@pytest.mark.parametrize("kind", list(TEXT_KINDS))
def test_unknown_options_are_config_errors(models: dict[str, aikit.Model], kind: str) -> None:
    valid = set(GENERATION_OPTIONS)

    @BOUNDED
    @given(
        st.dictionaries(
            st.from_regex(r"[a-z_]{1,12}", fullmatch=True).filter(
                lambda k: k not in valid | {"batch_size", "max_length", "progress"}
            ),
            st.integers(),
            min_size=1,
            max_size=3,
        )
    )
    def check(options: dict[str, Any]) -> None:
        with pytest.raises(aikit.ConfigError, match="option"):
            models[kind].predict("good", **options)

    check()


option_values = st.one_of(
    st.integers(-3, 4),
    st.integers(1_000, 10**12),  # far beyond any context: must be refused, not run for hours
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.none(),
    st.booleans(),
    st.lists(st.text(max_size=3), max_size=2),
)


@pytest.mark.parametrize("kind", GENERATIVE)
def test_hostile_generation_options_are_config_errors_or_run_bounded(models: dict[str, aikit.Model], kind: str) -> None:
    names = GENERATION_OPTIONS

    @BOUNDED
    @given(st.dictionaries(st.sampled_from(names), option_values, max_size=4))
    def check(options: dict[str, Any]) -> None:
        # without a chat template the empty prompt has no tokens at all: an input error (indexed), not a crash
        empty_ok = ("input-error",) if options.get("chat_template") is False else ()
        assert outcome(models[kind], kind, ["good movie", ""], **options) in ("ok", "config-error", *empty_ok)

    check()


@pytest.mark.parametrize("kind", GENERATIVE)
def test_max_new_tokens_beyond_the_context_is_refused(models: dict[str, aikit.Model], kind: str) -> None:
    with pytest.raises(aikit.ConfigError, match="max_new_tokens=1000000"):
        models[kind].predict("hello", max_new_tokens=1_000_000)


def test_chat_messages_are_validated(models: dict[str, aikit.Model]) -> None:
    model = models["llama-causal-lm"]
    assert isinstance(model.predict([{"role": "user", "content": ""}], **FAST), aikit.Generation)
    for bad in ([{"role": "user"}], [{"role": 1, "content": "x"}], [{"role": "user", "content": None}]):
        with pytest.raises(aikit.InputError, match="input 0: each chat message needs"):
            model.predict(bad, **FAST)


@pytest.mark.parametrize("kind", ["llama-causal-lm"])
def test_stream_validates_like_predict(models: dict[str, aikit.Model], kind: str) -> None:
    model = models[kind]
    with pytest.raises(aikit.InputError):
        list(model.stream(b"\xff", **FAST))
    with pytest.raises(aikit.ConfigError):
        list(model.stream("hi", bogus=1))
    assert isinstance("".join(model.stream("good", **FAST)), str)


# ------------------------------------------------------------------ image tasks


@pytest.fixture(scope="module")
def png_bytes() -> bytes:
    from PIL import Image

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


image_arrays = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.int64, np.float32, np.float64, np.bool_, np.complex64]),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=40),
    elements={"allow_nan": True, "allow_infinity": True},
)


@pytest.mark.parametrize("kind", list(IMAGE_KINDS))
def test_image_empty_list_and_valid_image(models: dict[str, aikit.Model], kind: str, png_bytes: bytes) -> None:
    assert models[kind].predict([]) == []
    assert outcome(models[kind], kind, [png_bytes, np.zeros((32, 32, 3), np.uint8)]) == "ok"


@pytest.mark.parametrize("kind", list(IMAGE_KINDS))
def test_any_array_gives_a_result_or_an_input_error(models: dict[str, aikit.Model], kind: str) -> None:
    @BOUNDED
    @given(image_arrays)
    def check(array: np.ndarray[Any, Any]) -> None:
        got = outcome(models[kind], kind, [array])
        if not np.isfinite(array.astype(np.complex128)).all() or array.dtype.kind in "bc" or array.size == 0:
            assert got == "input-error"  # NaN / Inf / complex / bool / empty never reach the model

    check()


@pytest.mark.parametrize("kind", list(IMAGE_KINDS))
def test_corrupt_image_bytes_are_input_errors(models: dict[str, aikit.Model], kind: str, png_bytes: bytes) -> None:
    @BOUNDED
    @given(st.data())
    def check(data: st.DataObject) -> None:
        mutated = bytearray(png_bytes)
        how = data.draw(st.sampled_from(["truncate", "flip", "random"]))
        if how == "truncate":
            mutated = mutated[: data.draw(st.integers(0, len(mutated) - 1))]
        elif how == "flip":
            for pos in data.draw(st.lists(st.integers(0, len(mutated) - 1), min_size=1, max_size=8)):
                mutated[pos] ^= 0xFF
        else:
            mutated = bytearray(data.draw(st.binary(max_size=200)))
        assert outcome(models[kind], kind, [bytes(mutated)]) in ("ok", "input-error")

    check()


@pytest.mark.parametrize("kind", list(IMAGE_KINDS))
def test_corrupt_and_missing_image_files_are_input_errors(
    models: dict[str, aikit.Model], kind: str, png_bytes: bytes, tmp_path: Path
) -> None:
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(png_bytes[: len(png_bytes) // 2])
    text = tmp_path / "notes.jpg"
    text.write_text("not an image", encoding="utf-8")
    for item, message in (
        (truncated, "cannot decode image"),
        (text, "cannot decode image"),
        (tmp_path / "missing.png", "does not exist"),
    ):
        with pytest.raises(aikit.InputError, match=f"^input 1: .*{message}"):
            models[kind].predict([png_bytes, item])


@pytest.mark.parametrize("kind", list(IMAGE_KINDS))
def test_decompression_bombs_are_refused_before_decoding(models: dict[str, aikit.Model], kind: str) -> None:
    from PIL import Image

    for side in (10_000, 20_000, 1 << 30):  # 100 Mpx (PIL only warns), 400 Mpx (PIL raises), absurd
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with pytest.raises(aikit.InputError, match="^input 0: .*pixel"):
                models[kind].predict([png_header(side, side)])


def png_header(width: int, height: int) -> bytes:
    """A 67-byte PNG declaring ``width`` x ``height`` grey pixels (what a decompression bomb opens with)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("kind", list(IMAGE_KINDS))
def test_wrong_types_for_images_are_input_errors(models: dict[str, aikit.Model], kind: str) -> None:
    for value in (None, 7, 2.5, {"image": 1}, ["a"], object()):
        with pytest.raises(aikit.InputError, match="^input 1: "):
            models[kind].predict([np.zeros((32, 32, 3), np.uint8), value])


@pytest.mark.parametrize("kind", list(IMAGE_KINDS))
def test_unknown_image_options_are_config_errors(models: dict[str, aikit.Model], kind: str) -> None:
    with pytest.raises(aikit.ConfigError, match="takes no options"):
        models[kind].predict(np.zeros((32, 32, 3), np.uint8), top_k=3)


# ------------------------------------------------------------------ batching settings


@pytest.mark.parametrize("name", ["batch_size", "max_length"])
def test_batching_settings_are_validated(models: dict[str, aikit.Model], name: str) -> None:
    model = models["bert-sequence-classification"]

    @BOUNDED
    @given(st.one_of(st.integers(-10, 0), st.floats(), st.text(max_size=3), st.booleans()))
    def check(value: Any) -> None:
        with pytest.raises(aikit.ConfigError, match=name):
            model.predict(["good"], **{name: value})

    check()


def test_model_limits_are_respected_for_any_max_length(models: dict[str, aikit.Model]) -> None:
    model = models["bert-sequence-classification"]

    @BOUNDED
    @given(st.integers(1, 10_000), st.lists(words, min_size=1, max_size=3), st.integers(0, 300))
    def check(max_length: int, items: list[str], extra_words: int) -> None:
        items = [*items, "good " * extra_words]  # past the model's 64 positions: must be cut, not crash
        assert outcome(model, "bert-sequence-classification", items, max_length=max_length) == "ok"

    check()
