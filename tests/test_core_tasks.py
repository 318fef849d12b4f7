"""Every task on tiny models: typed results, batching, truncation, inference of the task."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aikit
from aikit.contracts.results import Classification, Embedding, Generation, TokenTags
from aikit.errors import ConfigError, InputError
from aikit.testing import MockBackend, fresh_host

TinyDir = Callable[[str], Path]
TEXTS = ["good movie", "the film was terrible and the book was bad", "hello", "paris is a big city on a river ."]


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: TinyDir) -> aikit.Model:
    return aikit.Model.load(tiny_model_dir("bert-embedding"), task="feature-extraction")


def test_feature_extraction_reads_sentence_transformers_pooling(embedder: aikit.Model) -> None:
    assert (embedder.task.pooling, embedder.task.normalize) == ("mean", True)  # type: ignore[attr-defined]
    out = embedder.predict(TEXTS)
    assert all(isinstance(r, Embedding) and r.vector.dtype == np.float32 for r in out)
    norms = [float(np.linalg.norm(r.vector)) for r in out]
    assert norms == pytest.approx([1.0] * len(TEXTS), abs=1e-5)


def test_single_input_gives_single_result_and_list_gives_list(embedder: aikit.Model) -> None:
    one = embedder.predict("hello")
    assert isinstance(one, Embedding)
    assert np.array_equal(one.vector, embedder.predict(["hello"])[0].vector)
    assert embedder.predict([]) == []


def test_batching_restores_input_order_whatever_the_batch_size(embedder: aikit.Model) -> None:
    alone = [embedder.predict(t).vector for t in TEXTS]
    for batch_size in (1, 2, 3, 64):
        together = embedder.embed(TEXTS, batch_size=batch_size)
        np.testing.assert_allclose(together, np.stack(alone), atol=1e-5)


def test_batches_are_length_sorted_and_padded_to_their_own_longest(tiny_model_dir: TinyDir) -> None:
    from aikit_formats.artifact import ModuleLoader  # noqa: F401  (the plugin is importable)

    class MockPlugin:
        @aikit.hookimpl
        def aikit_register_backends(self, register: Any) -> None:
            register(MockBackend)

    with fresh_host(MockPlugin()):
        model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"), backend="mock")
        texts = ["a", "a b c d e f g h", "a b", "a b c d e f g", "a b c"]
        model.predict(texts, batch_size=2)
        backend = model.backend
        assert isinstance(backend, MockBackend)
        widths = [call["input_ids"].shape[1] for call in backend.calls]
        assert widths == [10, 5, 3]  # [CLS] + words + [SEP], longest batch first
        for call in backend.calls:
            assert call["attention_mask"][:, -1].max() == 1  # no batch is padded past its longest row


def test_text_classification_labels_and_scores(tiny_model_dir: TinyDir) -> None:
    model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"))
    assert model.task_name == "text-classification"  # inferred from config.architectures
    result = model.predict("good movie")
    assert isinstance(result, Classification)
    assert set(result.scores) == {"negative", "positive"}
    assert result.score == max(result.scores.values())
    assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-5)


def test_labels_override(tiny_model_dir: TinyDir) -> None:
    model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"), labels=["no", "yes"])
    assert set(model.predict("good").scores) == {"no", "yes"}


def test_token_classification_spans_point_into_the_text(tiny_model_dir: TinyDir) -> None:
    model = aikit.Model.load(tiny_model_dir("bert-token-classification"))
    text = "john and mary in paris"
    result = model.predict(text)
    assert isinstance(result, TokenTags)
    for e in result.entities:
        assert text[e.start : e.end] == e.word and e.label in {"PER", "LOC"}


def test_text_generation_greedy_is_deterministic_and_streams(tiny_model_dir: TinyDir) -> None:
    model = aikit.Model.load(tiny_model_dir("llama-causal-lm"))
    assert model.task_name == "text-generation"
    a = model.predict("hello world", max_new_tokens=6)
    b = model.predict("hello world", max_new_tokens=6)
    assert isinstance(a, Generation) and a == b
    assert len(a.token_ids) <= 6 and a.finish_reason in {"stop", "length"}
    pieces = list(model.stream("hello world", max_new_tokens=6))
    assert "".join(pieces) == a.text
    chat = model.predict([{"role": "user", "content": "hello"}], max_new_tokens=3)
    assert isinstance(chat, Generation)  # a message list is one conversation, not a batch


def test_a_stop_string_ends_decoding(tiny_model_dir: TinyDir) -> None:
    model = aikit.Model.load(tiny_model_dir("llama-causal-lm"))
    full = model.predict("hello world", max_new_tokens=12, do_sample=True, seed=3, temperature=2.0)
    words = full.text.split()
    assert len(words) >= 3, full.text  # the tiny model writes a word per token
    stop = words[1]
    stopped = model.predict("hello world", max_new_tokens=12, do_sample=True, seed=3, temperature=2.0, stop=[stop])
    assert stop not in stopped.text and full.text.startswith(stopped.text)
    # Decoding ended at the stop string, it did not run on to max_new_tokens with the text cut.
    assert stopped.finish_reason == "stop"
    assert len(stopped.token_ids) < len(full.token_ids)


def test_batched_generation_matches_one_by_one(tiny_model_dir: TinyDir) -> None:
    model = aikit.Model.load(tiny_model_dir("llama-causal-lm"))
    prompts = ["hello", "the cat and the dog are happy", "red green blue"]
    together = model.predict(prompts, max_new_tokens=5)
    alone = [model.predict(p, max_new_tokens=5) for p in prompts]
    assert [g.token_ids for g in together] == [g.token_ids for g in alone]


def test_sampling_is_seeded(tiny_model_dir: TinyDir) -> None:
    model = aikit.Model.load(tiny_model_dir("llama-causal-lm"))
    opts = {"max_new_tokens": 8, "do_sample": True, "temperature": 1.5, "top_k": 50, "top_p": 0.95, "seed": 7}
    assert model.predict("hello", **opts) == model.predict("hello", **opts)


def test_generation_options_are_validated(tiny_model_dir: TinyDir) -> None:
    model = aikit.Model.load(tiny_model_dir("llama-causal-lm"))
    with pytest.raises(ConfigError, match="unknown text-generation option"):
        model.predict("hi", max_tokens=3)
    with pytest.raises(ConfigError, match="temperature"):
        model.predict("hi", temperature=0)


def test_seq2seq_generation(tiny_model_dir: TinyDir) -> None:
    model = aikit.Model.load(tiny_model_dir("t5-seq2seq"))
    assert model.task_name == "text2text-generation"  # inferred from is_encoder_decoder
    out = model.predict(["summarize: the cat is happy", "hello"], max_new_tokens=4)
    assert [len(g.token_ids) <= 4 for g in out] == [True, True]
    assert aikit.Model.load(tiny_model_dir("t5-seq2seq"), task="summarization").task_name == "text2text-generation"


def test_image_classification_hf_model(tiny_model_dir: TinyDir, tmp_path: Path) -> None:
    from PIL import Image

    model = aikit.Model.load(tiny_model_dir("vit-image-classification"))
    path = tmp_path / "img.png"
    Image.fromarray((np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)).save(path)
    by_path = model.predict(path)
    by_bytes = model.predict(path.read_bytes())
    assert isinstance(by_path, Classification) and by_path.label in {"cat", "dog", "bird"}
    assert by_path == by_bytes
    with pytest.raises(InputError, match="cannot decode image"):
        model.predict(b"not an image")


def test_plain_torch_module_image_classifier() -> None:
    import torch

    from aikit.testing.tiny import TinyCNN

    torch.manual_seed(0)
    net = TinyCNN()
    model = aikit.Model.from_module(
        net,
        task="image-classification",
        preprocess=aikit.ImagePreprocess(size=(8, 8), grayscale=True, scale=1 / 16),
        labels=[str(i) for i in range(10)],
    )
    digit = np.random.default_rng(1).integers(0, 17, size=(8, 8)).astype(np.float32)
    result = model.predict(digit)
    with torch.inference_mode():
        expected = net(torch.from_numpy(digit / 16)[None, None]).softmax(-1)[0]
    assert result.label == str(int(expected.argmax()))
    assert result.score == pytest.approx(float(expected.max()), abs=1e-5)


def test_truncation_warns_once(embedder: aikit.Model) -> None:
    long = " ".join(["good"] * 200)
    with pytest.warns(aikit.TruncationWarning, match="truncated"):
        embedder.predict([long, long])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embedder.predict(long)  # once per model


def test_wrong_input_types_name_the_index(embedder: aikit.Model) -> None:
    with pytest.raises(InputError, match="input 1: expected a string, got int"):
        embedder.predict(["ok", 3])
    with pytest.raises(InputError, match="not valid UTF-8"):
        embedder.predict([b"\xff\xfe"])


def test_task_cannot_be_inferred_lists_choices(tiny_model_dir: TinyDir, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "plain-bert"
    shutil.copytree(tiny_model_dir("bert-embedding"), folder)
    (folder / "modules.json").unlink()  # no sentence-transformers config: nothing says "embeddings"
    with pytest.raises(ConfigError, match="cannot infer the task.*feature-extraction"):
        aikit.Model.load(folder)


def test_unknown_source_and_missing_path_errors(tmp_path: Path) -> None:
    with pytest.raises(aikit.ModelLoadError, match="does not exist"):
        aikit.Model.load(str(tmp_path / "nope" / "model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(aikit.ModelLoadError, match="no loader understands"):
        aikit.Model.load(tmp_path / "empty")


def test_hub_id_not_in_cache_says_how_to_provide_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(
        aikit.ModelLoadError, match="'org/some-model' is not a local folder and is not in the Hugging Face cache"
    ):
        aikit.Model.load("org/some-model")


def test_to_leaves_the_original_model_untouched(tiny_model_dir: TinyDir) -> None:
    model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"))
    before = model.predict("good movie")
    half = model.to("torch", dtype="bfloat16")
    assert half.backend.describe()["dtype"] == "bfloat16"
    assert model.backend.describe()["dtype"] == "float32"
    assert model.predict("good movie") == before


def test_auto_without_a_fitting_backend_says_why_per_backend(
    tiny_model_dir: TinyDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIKIT_BLOCK_PLUGINS", "onnxruntime"
    )  # it would accept device="cuda", then ask for onnxruntime-gpu
    with (
        fresh_host(),
        pytest.raises(aikit.BackendError, match=r"on device 'cuda'.*torch: does not run on device 'cuda'"),
    ):
        aikit.Model.load(tiny_model_dir("bert-sequence-classification"), device="cuda")
