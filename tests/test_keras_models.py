"""Keras 3 models (plugins/aikit_keras): safe-mode loading, predictions equal to Keras' own, save/load.

Every model is built and trained here for a few seconds on data shipped with installed packages:

- scikit-learn's digits (1797 8x8 grey images, ``sklearn.datasets.load_digits``): a small CNN read as
  an ``image-classification`` model through ``aikit.ImagePreprocess`` (aikit hands channels-first
  pixels; the keras backend gives the model the channels-last layout it declares) and an MLP on the
  64 pixel values as a flat feature vector (a plain ``preprocess`` function).
- sentences from the docstrings of Python's own ``math``, ``re`` and ``json`` modules, labelled by
  the module they come from: an Embedding + LSTM text classifier with a word-level tokenizer saved
  next to the ``.keras`` file.

"Equal" means probabilities within 1e-5 of ``softmax(keras_model.predict(...))`` (float32 on the
same torch kernels; padding is masked by ``mask_zero``, so batch padding changes nothing).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aikit

if importlib.util.find_spec("keras") is None:  # not importorskip: importing keras now would fix its backend
    pytest.skip("needs the keras extra: pip install 'aikit[keras]'", allow_module_level=True)

from aikit_keras._import import import_keras

TOL = 1e-5
DIGIT_LABELS = [str(i) for i in range(10)]
MODULES = (math, re, json)


def _softmax(logits: Any) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _probs(results: list[Any], labels: list[str]) -> np.ndarray:
    return np.array([[r.scores[label] for label in labels] for r in results])


@pytest.fixture(scope="module")
def keras() -> Any:
    return import_keras()


@pytest.fixture(scope="module")
def digits() -> Any:
    from sklearn.datasets import load_digits

    return load_digits()


@pytest.fixture(scope="module")
def cnn_file(keras: Any, digits: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    keras.utils.set_random_seed(0)
    x = (digits.images / 16.0).astype("float32")[..., None]
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:1500], digits.target[:1500], epochs=4, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("keras_cnn") / "digits_cnn.keras"
    model.save(path)
    return path, model


def _flat_pixels(image: Any) -> np.ndarray:
    """The MLP's input: an 8x8 digit's 64 pixel values scaled to [0, 1]."""
    return (np.asarray(image, dtype=np.float32) / 16.0).reshape(64)


@pytest.fixture(scope="module")
def mlp_file(keras: Any, digits: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    keras.utils.set_random_seed(1)
    x = (digits.data / 16.0).astype("float32")
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:1500], digits.target[:1500], epochs=8, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("keras_mlp") / "digits_mlp.keras"
    model.save(path)
    return path, model


def docstring_sentences() -> tuple[list[str], list[int]]:
    """Sentences of the public functions' docstrings in ``math``, ``re`` and ``json``, labelled 0/1/2."""
    texts: list[str] = []
    labels: list[int] = []
    for label, module in enumerate(MODULES):
        for name in sorted(dir(module)):
            doc = getattr(getattr(module, name), "__doc__", None)
            if name.startswith("_") or not doc or not callable(getattr(module, name)):
                continue
            for sentence in re.split(r"(?<=[.!?])\s+|\n\s*\n", doc):
                words = re.findall(r"[a-z]+", sentence.lower())
                if 3 <= len(words) <= 40:
                    texts.append(" ".join(words))
                    labels.append(label)
    return texts, labels


def word_tokenizer(texts: list[str]) -> Any:
    """A word-level tokenizer over ``texts`` with ``[PAD]`` = 0 (what ``mask_zero`` masks) and ``[UNK]`` = 1."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1}
    for text in texts:
        for word in text.split():
            vocab.setdefault(word, len(vocab))
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="[PAD]", unk_token="[UNK]", model_max_length=64)


@pytest.fixture(scope="module")
def lstm_dir(keras: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any, list[str]]:
    texts, labels = docstring_sentences()
    tokenizer = word_tokenizer(texts)
    ids = tokenizer(texts, padding="max_length", truncation=True, max_length=40, return_tensors="np")["input_ids"]
    keras.utils.set_random_seed(2)
    inputs = keras.Input((None,), dtype="int32", name="input_ids")
    hidden = keras.layers.Embedding(len(tokenizer), 16, mask_zero=True)(inputs)
    hidden = keras.layers.LSTM(16)(hidden)
    model = keras.Model(inputs, keras.layers.Dense(len(MODULES))(hidden))
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(ids, np.array(labels), epochs=6, batch_size=32, verbose=0)
    folder = tmp_path_factory.mktemp("keras_lstm")
    model.save(folder / "docstrings.keras")
    tokenizer.save_pretrained(folder)
    return folder / "docstrings.keras", model, tokenizer, texts


def test_cnn_predictions_equal_keras_before_and_after_save(cnn_file: Any, digits: Any, tmp_path: Path) -> None:
    path, keras_model = cnn_file
    model = aikit.Model.load(
        path,
        task="image-classification",
        preprocess=aikit.ImagePreprocess(size=(8, 8), grayscale=True, scale=1 / 16),
        labels=DIGIT_LABELS,
    )
    assert model.backend_name == "keras"
    images = list(digits.images[1500:1540])
    expected = _softmax(keras_model.predict((digits.images[1500:1540] / 16.0)[..., None], verbose=0))
    np.testing.assert_allclose(_probs(model.predict(images), DIGIT_LABELS), expected, atol=TOL)
    accuracy = np.mean(
        [r.label == str(t) for r, t in zip(model.predict(list(digits.images[1500:])), digits.target[1500:])]
    )
    assert accuracy > 0.8  # it learned something: the checks above compare a real classifier
    reloaded = aikit.Model.load(model.save(tmp_path / "artifact"))  # ImagePreprocess is saved as data
    assert reloaded.backend_name == "keras"
    assert (tmp_path / "artifact" / "model.keras").is_file()
    np.testing.assert_allclose(_probs(reloaded.predict(images), DIGIT_LABELS), expected, atol=TOL)


def test_mlp_predictions_equal_keras_before_and_after_save(mlp_file: Any, digits: Any, tmp_path: Path) -> None:
    path, keras_model = mlp_file
    model = aikit.Model.load(path, task="image-classification", preprocess=_flat_pixels, labels=DIGIT_LABELS)
    images = list(digits.images[1500:1600])
    expected = _softmax(keras_model.predict(digits.data[1500:1600] / 16.0, verbose=0))
    np.testing.assert_allclose(_probs(model.predict(images, batch_size=7), DIGIT_LABELS), expected, atol=TOL)
    saved = model.save(tmp_path / "artifact")
    with pytest.raises(aikit.ModelLoadError, match="preprocess"):  # a function is code: never stored
        aikit.Model.load(saved)
    reloaded = aikit.Model.load(saved, preprocess=_flat_pixels)
    np.testing.assert_allclose(_probs(reloaded.predict(images), DIGIT_LABELS), expected, atol=TOL)


def test_lstm_text_classifier_equals_keras_before_and_after_save(lstm_dir: Any, tmp_path: Path) -> None:
    path, keras_model, tokenizer, texts = lstm_dir
    names = [m.__name__ for m in MODULES]
    model = aikit.Model.load(path, task="text-classification", labels=names)  # tokenizer read from the folder
    sample = texts[::7][:40]
    ids = tokenizer(sample, padding=True, return_tensors="np")["input_ids"]
    expected = _softmax(keras_model.predict(ids, verbose=0))
    np.testing.assert_allclose(_probs(model.predict(sample, batch_size=8), names), expected, atol=TOL)
    reloaded = aikit.Model.load(model.save(tmp_path / "artifact"))
    np.testing.assert_allclose(_probs(reloaded.predict(sample), names), expected, atol=TOL)
    assert reloaded.predict("return the arc cosine of x measured in radians").label == "math"


def test_lambda_layer_needs_trust_remote_code(keras: Any, tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2.0), keras.layers.Dense(2)])
    path = tmp_path / "lambda.keras"
    model.save(path)

    def as_array(item: Any) -> np.ndarray:
        return np.asarray(item, dtype=np.float32)

    with pytest.raises(aikit.UnsafeModelError, match="trust_remote_code=True"):
        aikit.Model.load(path, task="image-classification", preprocess=as_array)
    trusted = aikit.Model.load(path, task="image-classification", preprocess=as_array, trust_remote_code=True)
    x = np.array([[0.5, -1.0, 2.0]], dtype=np.float32)
    expected = _softmax(model.predict(x, verbose=0))
    np.testing.assert_allclose([list(trusted.predict([x[0]])[0].scores.values())], expected, atol=TOL)
    # An artifact is data: reloading it never runs the Lambda's code, whatever the caller passes.
    saved = trusted.save(tmp_path / "artifact")
    with pytest.raises(aikit.UnsafeModelError, match="Lambda"):
        aikit.Model.load(saved, preprocess=as_array, trust_remote_code=True)


def test_not_a_keras_archive(tmp_path: Path) -> None:
    path = tmp_path / "fake.keras"
    path.write_bytes(b"not a zip")
    with pytest.raises(aikit.ModelLoadError, match="not a Keras 3 .keras file"):
        aikit.Model.load(path, task="image-classification")


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=300
    )


LOAD = (
    "import aikit, sys\n"
    "try:\n"
    "    aikit.Model.load(sys.argv[-1] if len(sys.argv) > 1 else {path!r}, task='image-classification')\n"
    "except aikit.AikitError as e:\n"
    "    print(type(e).__name__, e)\n"
)


def test_refuses_another_keras_backend(cnn_file: Any) -> None:
    """KERAS_BACKEND asks for another backend: aikit refuses rather than overriding the user's choice."""
    path, _ = cnn_file
    asked = _run(LOAD.format(path=str(path)), {"KERAS_BACKEND": "jax"})
    assert "BackendUnavailableError" in asked.stdout, asked.stdout + asked.stderr
    assert "KERAS_BACKEND is 'jax'" in asked.stdout


def test_refuses_keras_imported_with_another_backend(cnn_file: Any) -> None:
    """Keras imported first on JAX (the one other backend small enough to install for a test)."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("needs jax installed: Keras imports completely only on a backend whose framework is present")
    path, _ = cnn_file
    done = _run("import keras\n" + LOAD.format(path=str(path)), {"KERAS_BACKEND": "jax"})
    assert "BackendUnavailableError" in done.stdout, done.stdout + done.stderr
    assert "already imported" in done.stdout and "'jax'" in done.stdout


def test_missing_keras_says_what_to_install(cnn_file: Any, tmp_path: Path) -> None:
    """A ``keras`` package that cannot be imported (shadowed here by one that raises, as a missing one does)."""
    path, _ = cnn_file
    (tmp_path / "keras").mkdir()
    (tmp_path / "keras" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'keras'\")\n")
    done = _run(LOAD.format(path=str(path)), {"PYTHONPATH": str(tmp_path)})
    assert "MissingDependencyError" in done.stdout, done.stdout + done.stderr
    assert "pip install 'aikit[keras]'" in done.stdout


# ---------------------------------------------------------------------- ONNX Runtime
# The onnxruntime backend runs a validated ONNX export of the Keras model (plugins/aikit_keras/onnx_export.py).
# "Equal" on ONNX Runtime means probabilities within ORT_TOL of softmax(keras_model.predict(...)): the
# graph computes the same float32 ops with other kernels (measured differences are below 1e-6).
ORT_TOL = 1e-5


def _ort_input_shape(model: Any) -> list[Any]:
    return list(model.backend.sessions["model"].get_inputs()[0].shape)


def test_cnn_on_onnxruntime_equals_keras(cnn_file: Any, digits: Any, tmp_path: Path, private_aikit_cache: Any) -> None:
    pytest.importorskip("onnxruntime")
    path, keras_model = cnn_file
    preprocess = aikit.ImagePreprocess(size=(8, 8), grayscale=True, scale=1 / 16)
    model = aikit.Model.load(
        path, task="image-classification", preprocess=preprocess, labels=DIGIT_LABELS, backend="onnxruntime"
    )
    assert model.backend_name == "onnxruntime"
    # The graph takes aikit's channels-first pixels; the channels-last transpose is inside it.
    assert _ort_input_shape(model)[1:] == [1, 8, 8]
    assert model.backend.facts["validation"]["export"]["logits"] < 1e-4
    images = list(digits.images[1500:1564])
    expected = _softmax(keras_model.predict((digits.images[1500:1564] / 16.0)[..., None], verbose=0))
    np.testing.assert_allclose(_probs(model.predict(images, batch_size=16), DIGIT_LABELS), expected, atol=ORT_TOL)
    reloaded = aikit.Model.load(model.save(tmp_path / "artifact"))  # an ONNX artifact: no Keras needed to run it
    assert reloaded.backend_name == "onnxruntime" and not (tmp_path / "artifact" / "model.keras").exists()
    np.testing.assert_allclose(_probs(reloaded.predict(images), DIGIT_LABELS), expected, atol=ORT_TOL)


def test_mlp_moved_to_onnxruntime_equals_keras(mlp_file: Any, digits: Any, private_aikit_cache: Any) -> None:
    pytest.importorskip("onnxruntime")
    path, keras_model = mlp_file
    model = aikit.Model.load(path, task="image-classification", preprocess=_flat_pixels, labels=DIGIT_LABELS)
    ort = model.to("onnxruntime")
    assert ort.backend_name == "onnxruntime" and model.backend_name == "keras"
    images = list(digits.images[1500:1600])
    expected = _softmax(keras_model.predict(digits.data[1500:1600] / 16.0, verbose=0))
    np.testing.assert_allclose(_probs(ort.predict(images, batch_size=7), DIGIT_LABELS), expected, atol=ORT_TOL)


def test_lstm_on_onnxruntime_equals_keras_at_every_length(lstm_dir: Any, private_aikit_cache: Any) -> None:
    """The LSTM's time loop is unrolled by tracing: the graph is exported at the tokenizer's limit (64)
    with padding inside it, and must still equal Keras on batches of other lengths."""
    pytest.importorskip("onnxruntime")
    path, keras_model, tokenizer, texts = lstm_dir
    names = [m.__name__ for m in MODULES]
    model = aikit.Model.load(path, task="text-classification", labels=names, backend="onnxruntime")
    assert model.backend.facts["sequence_length"] == tokenizer.model_max_length == 64
    for sample in (texts[::7][:40], texts[1::11][:9], ["x"]):
        ids = tokenizer(sample, padding=True, return_tensors="np")["input_ids"]
        expected = _softmax(keras_model.predict(ids, verbose=0))
        np.testing.assert_allclose(_probs(model.predict(sample, batch_size=8), names), expected, atol=ORT_TOL)
    # Longer than the graph: the task truncates to the tokenizer's limit, as on the keras backend.
    long_text = " ".join(texts[:12])
    ids = tokenizer([long_text], truncation=True, max_length=64, return_tensors="np")["input_ids"]
    assert ids.shape[1] == 64
    with pytest.warns(aikit.TruncationWarning):
        got = _probs([model.predict(long_text)], names)
    np.testing.assert_allclose(got, _softmax(keras_model.predict(ids, verbose=0)), atol=ORT_TOL)


def test_unmasked_padding_fails_validation(keras: Any, lstm_dir: Any, tmp_path: Path, private_aikit_cache: Any) -> None:
    """An LSTM that reads its padding (no mask_zero) changes when the fixed-length graph pads its input:
    the export is refused instead of served wrong."""
    pytest.importorskip("onnxruntime")
    _, _, tokenizer, _ = lstm_dir
    keras.utils.set_random_seed(3)
    inputs = keras.Input((None,), dtype="int32", name="input_ids")
    hidden = keras.layers.LSTM(8)(keras.layers.Embedding(len(tokenizer), 8)(inputs))
    folder = tmp_path / "unmasked"
    folder.mkdir()
    keras.Model(inputs, keras.layers.Dense(3)(hidden)).save(folder / "unmasked.keras")
    tokenizer.save_pretrained(folder)
    with pytest.raises(aikit.BackendError, match="does not reproduce"):
        aikit.Model.load(folder / "unmasked.keras", task="text-classification", backend="onnxruntime")


def test_channels_first_keras_model_is_not_transposed(keras: Any, tmp_path: Path, private_aikit_cache: Any) -> None:
    pytest.importorskip("onnxruntime")
    keras.utils.set_random_seed(4)
    net = keras.Sequential(
        [
            keras.Input((3, 6, 5)),
            keras.layers.Conv2D(4, 3, data_format="channels_first", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )
    net.save(tmp_path / "cf.keras")
    preprocess = aikit.ImagePreprocess(size=(6, 5))
    model = aikit.Model.load(
        tmp_path / "cf.keras", task="image-classification", preprocess=preprocess, backend="onnxruntime"
    )
    assert _ort_input_shape(model)[1:] == [3, 6, 5]
    images = [np.random.default_rng(i).integers(0, 256, (12, 10, 3), dtype=np.uint8) for i in range(4)]
    expected = _softmax(net.predict(np.stack([preprocess(im) for im in images]), verbose=0))
    got = np.array([[r.scores[label] for label in sorted(r.scores)] for r in model.predict(images)])
    np.testing.assert_allclose(got, expected, atol=ORT_TOL)


def test_a_layer_onnx_cannot_express_is_named(keras: Any, tmp_path: Path, private_aikit_cache: Any) -> None:
    """MelSpectrogram computes an STFT of complex values, which torch's ONNX exporter refuses."""
    pytest.importorskip("onnxruntime")
    inputs = keras.Input((256,))
    mel = keras.layers.MelSpectrogram(fft_length=64, sequence_stride=32, num_mel_bins=8, sampling_rate=8000)(inputs)
    net = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(mel)))
    path = tmp_path / "mel.keras"
    net.save(path)

    def samples(item: Any) -> np.ndarray:
        return np.asarray(item, dtype=np.float32).reshape(256)

    with pytest.raises(aikit.BackendError, match=r"Keras layer 'mel_spectrogram' \(MelSpectrogram\)") as caught:
        aikit.Model.load(path, task="image-classification", preprocess=samples, backend="onnxruntime")
    assert "backend='keras'" in str(caught.value)
