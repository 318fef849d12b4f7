"""``Model.explain`` (aikit/measure/explain.py, plugins/aikit_explain): typed attributions, pictures, faithfulness.

The text model is aikit's tiny BERT (``aikit.testing.tiny``: 2 layers, 32 wide, word-level
vocabulary) trained here for a few seconds on a keyword task: a sentence of filler words is
``marked`` when it contains one of two marker words. The right explanation is known, so checks are
exact: the marker must be the top-attributed token. The image model is a small Keras CNN trained on
scikit-learn's digits (as in test_keras_models.py), explained per pixel.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aikit
from aikit.measure.explain import (
    Explainer,
    ExplainOptions,
    Explanation,
    faithfulness,
    get_explainer,
    model_randomization,
)
from aikit.testing import TINY_WORDS
from aikit.testing.trained import KEYWORD_LABELS, MARKERS, keyword_classifier, keyword_sentences
from aikit.testing.trained import digits_cnn as digits_cnn_model

pytest.importorskip("captum", reason="needs the explain extra: pip install 'aikit[explain]'")

LABELS = KEYWORD_LABELS


@pytest.fixture(scope="module")
def keyword_model() -> Any:
    assert all(m in TINY_WORDS for m in MARKERS)
    model = keyword_classifier()
    test_texts, test_labels = keyword_sentences(1, 200)
    accuracy = np.mean([r.label == LABELS[t] for r, t in zip(model.predict(test_texts), test_labels)])
    assert accuracy > 0.95, accuracy  # the keyword rule was learned: explanations have a right answer
    return model


def _marked(count: int) -> list[str]:
    texts, labels = keyword_sentences(2, 4 * count)
    return [t for t, label in zip(texts, labels) if label][:count]


@pytest.mark.parametrize("method", ["integrated-gradients", "occlusion"])
def test_text_marker_is_the_top_token(keyword_model: Any, method: str) -> None:
    texts = _marked(10)
    explanations = keyword_model.explain(texts, method=method, steps=16)
    assert len(explanations) == len(texts)
    for text, e in zip(texts, explanations):
        assert isinstance(e, Explanation) and e.kind == "text" and e.method == method
        assert e.target == "marked" and e.probability > 0.5
        assert e.tokens[0] == "[CLS]" and e.special[0] and e.attributions[0] == 0.0
        assert e.attributions.shape == (len(e.tokens),)
        assert e.top(1)[0][0] in MARKERS, (text, e.top(3))


def test_chosen_target_and_errors(keyword_model: Any) -> None:
    text = _marked(1)[0]
    other = keyword_model.explain(text, target="other")
    assert other.target == "other" and other.target_index == 0 and other.probability < 0.5
    marker = int(np.argmax([t in MARKERS for t in other.tokens]))
    assert other.attributions[marker] == other.attributions.min()  # the marker lowers "other" the most
    assert keyword_model.explain(text, target=1).target == "marked"
    with pytest.raises(aikit.ConfigError, match="unknown target label"):
        keyword_model.explain(text, target="nope")
    with pytest.raises(aikit.UnknownNameError, match="integrated-gradients"):
        keyword_model.explain(text, method="nope")
    with pytest.raises(aikit.ConfigError, match="steps"):
        keyword_model.explain(text, steps=0)


def test_faithfulness_passes_for_ig_and_fails_for_random(keyword_model: Any) -> None:
    explanations = keyword_model.explain(_marked(12), method="integrated-gradients", steps=16)
    report = faithfulness(keyword_model, explanations, k=1)
    assert report.passed, report
    assert report.top_k_drop > 0.5 > report.random_drop  # deleting the marker flips the prediction
    rng = np.random.default_rng(0)
    scrambled = [
        dataclasses.replace(e, attributions=rng.normal(size=e.attributions.shape).astype(np.float32))
        for e in explanations
    ]
    failed = faithfulness(keyword_model, scrambled, k=1)
    assert not failed.passed, failed
    assert explanations[0].faithfulness(keyword_model, k=1).k == 1


def test_occlusion_runs_on_onnxruntime(keyword_model: Any, private_aikit_cache: Any) -> None:
    """ONNX Runtime has no gradients: the default is occlusion, run through backend.forward only."""
    pytest.importorskip("onnxruntime")
    ort = keyword_model.to("onnxruntime")
    text = _marked(1)[0]
    e = ort.explain(text)
    assert e.method == "occlusion"
    reference = keyword_model.explain(text, method="occlusion")
    np.testing.assert_allclose(e.attributions, reference.attributions, atol=1e-4)
    with pytest.raises(aikit.ConfigError, match="occlusion"):
        ort.explain(text, method="integrated-gradients")


def test_text_pictures(keyword_model: Any, tmp_path: Path) -> None:
    e = keyword_model.explain(_marked(1)[0])
    fragment = e._repr_html_()
    assert fragment.count('class="aikit-token"') == len(e.tokens)
    page = e.to_html(tmp_path / "text.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "integrated-gradients" in page
    assert e.to_png(tmp_path / "text.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert e.to_dict()["tokens"] == list(e.tokens)


@pytest.fixture(scope="module")
def digits_cnn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    if importlib.util.find_spec("keras") is None:
        pytest.skip("needs the keras extra: pip install 'aikit[keras]'")
    return digits_cnn_model(tmp_path_factory.mktemp("explain_cnn"))


def test_image_heat_maps_and_faithfulness(digits_cnn: Any, tmp_path: Path) -> None:
    model, digits = digits_cnn
    images = list(digits.images[1500:1530])
    explanations = model.explain(images, steps=16)
    e = explanations[0]
    assert e.kind == "image" and e.attributions.shape == (8, 8) and e.image is not None
    assert e.target == model.predict(images[0]).label
    report = faithfulness(model, explanations, k=8)
    assert report.passed, report
    rng = np.random.default_rng(0)
    scrambled = [dataclasses.replace(x, attributions=rng.normal(size=(8, 8)).astype(np.float32)) for x in explanations]
    assert not faithfulness(model, scrambled, k=8).passed
    occluded = model.explain(images[0], method="occlusion", patch=2)
    assert occluded.attributions.shape == (8, 8)
    assert np.all(occluded.attributions[::2, ::2] == occluded.attributions[1::2, 1::2])  # one value per 2x2 patch
    assert '<img class="aikit-heatmap"' in e._repr_html_()
    assert e.to_png(tmp_path / "digit.png").read_bytes()[:4] == b"\x89PNG"


class _Constant(Explainer):
    name = "constant-test"

    def attribute(self, model: Any, example: Any, target: int, options: ExplainOptions) -> Any:
        return np.ones(example.features["input_ids"].shape, dtype=np.float32)


class _Plugin:
    @aikit.hookimpl
    def aikit_register_explainers(self, register: Any) -> None:
        register(_Constant)


class _BadPlugin:
    @aikit.hookimpl
    def aikit_register_explainers(self, register: Any) -> None:
        register(dict)


def test_third_party_explainer_plugin(keyword_model: Any, aikit_host: Any) -> None:
    aikit_host.add_plugin(_Plugin(), name="constant-explainer")
    assert get_explainer("constant-test") is _Constant
    e = keyword_model.explain("the cat", method="constant-test")
    assert e.method == "constant-test" and e.attributions[1] == 1.0 and e.attributions[0] == 0.0
    aikit_host.add_plugin(_BadPlugin(), name="bad-explainer")
    with pytest.raises(aikit.RegistrationError, match="not a subclass"):
        get_explainer("constant-test")


def test_cli_writes_html_and_png(keyword_model: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from aikit.cli import app

    saved = keyword_model.save(tmp_path / "artifact")
    texts = _marked(2)
    result = CliRunner().invoke(
        app,
        [
            "explain",
            str(saved),
            *texts,
            "--steps",
            "8",
            "--html",
            str(tmp_path / "out.html"),
            "--png",
            str(tmp_path / "out.png"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("marked (p=") == 2 and "integrated-gradients" in result.output
    page = (tmp_path / "out.html").read_text(encoding="utf-8")
    assert page.count("<section>") == 2
    assert (tmp_path / "out.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "out-1.png").is_file()
    as_json = CliRunner().invoke(app, ["explain", str(saved), texts[0], "--method", "occlusion", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert '"method": "occlusion"' in as_json.output


def _chromium() -> str | None:
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.browser
def test_html_renders_in_headless_chromium(keyword_model: Any, digits_cnn: Any, tmp_path: Path) -> None:
    """The page opens in a real browser: the token spans are in the parsed DOM, the screenshot has colour."""
    import subprocess

    from PIL import Image

    from aikit.measure.explain import write_html

    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium here: install it (apt-get install chromium) to run browser tests")
    model, digits = digits_cnn
    text = keyword_model.explain(_marked(1)[0])
    page = write_html([text, model.explain(digits.images[1500])], tmp_path / "page.html")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=900,900"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('class="aikit-token"') == len(text.tokens)
    assert 'class="aikit-heatmap"' in dom.stdout
    shot = tmp_path / "shot.png"
    done = subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int32)
    reddish = (pixels[..., 0] - pixels[..., 2] > 60).sum()  # the marker token's red box and the heat map
    assert reddish > 50, reddish
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text, image and colour bar, not a blank page


# ---------------------------------------------------------------------- model randomisation (Adebayo et al.)
class _InputOnly(Explainer):
    """An "explanation" that never looks at the model: the input itself (pixel values / token ids).

    Like the edge detectors in Adebayo et al. (2018), it can look plausible and passes for any weights,
    so the randomisation check must fail it."""

    name = "input-only-test"

    def attribute(self, model: Any, example: Any, target: int, options: ExplainOptions) -> Any:
        if "pixel_values" in example.features:
            return np.asarray(example.features["pixel_values"], dtype=np.float32)
        return np.asarray(example.features["input_ids"], dtype=np.float32)


class _InputOnlyPlugin:
    @aikit.hookimpl
    def aikit_register_explainers(self, register: Any) -> None:
        register(_InputOnly)


@pytest.mark.parametrize("method", ["integrated-gradients", "occlusion"])
def test_model_randomization_text(keyword_model: Any, method: str) -> None:
    explanations = keyword_model.explain(_marked(6), method=method, steps=16)
    report = model_randomization(keyword_model, explanations, steps=16)
    assert report.method == method and len(report.per_input) == 6
    assert report.passed, report
    assert report.similarity < 0.5


@pytest.mark.parametrize("method", ["integrated-gradients", "occlusion"])
def test_model_randomization_image(digits_cnn: Any, method: str) -> None:
    model, digits = digits_cnn
    explanations = model.explain(list(digits.images[1500:1510]), method=method, steps=16, patch=2)
    report = model_randomization(model, explanations, steps=16, patch=2)
    assert report.passed, report


def test_model_randomization_fails_an_explainer_that_ignores_the_model(
    digits_cnn: Any, keyword_model: Any, aikit_host: Any
) -> None:
    aikit_host.add_plugin(_InputOnlyPlugin(), name="input-only-explainer")
    model, digits = digits_cnn
    images = model.explain(list(digits.images[1500:1505]), method="input-only-test")
    failed = model_randomization(model, images)
    assert not failed.passed and failed.similarity == pytest.approx(1.0), failed
    texts = keyword_model.explain(_marked(3), method="input-only-test")
    assert not model_randomization(keyword_model, texts).passed


def test_randomized_model_leaves_the_model_alone(digits_cnn: Any) -> None:
    from aikit.measure.explain import randomized_model, rank_correlation

    model, digits = digits_cnn
    images = list(digits.images[1500:1540])
    before = [r.label for r in model.predict(images)]
    shuffled = randomized_model(model, seed=1)
    assert [r.label for r in model.predict(images)] == before
    accuracy = np.mean([r.label == str(t) for r, t in zip(shuffled.predict(images), digits.target[1500:1540])])
    assert accuracy < 0.5  # what training learned is gone
    assert rank_correlation(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(-1.0)
    assert rank_correlation(np.zeros(4), np.zeros(4)) == 1.0
    assert rank_correlation(np.zeros(4), np.arange(4)) == 0.0
    with pytest.raises(aikit.ConfigError, match="one method"):
        model_randomization(model, [model.explain(images[0]), model.explain(images[0], method="occlusion")], steps=4)


# ---------------------------------------------------------------------- text pairs under an embedding model
@pytest.fixture(scope="module")
def minilm() -> Any:
    from aikit.defaults import default_model_path

    try:
        path = default_model_path("minilm")
    except aikit.MissingDependencyError as exc:
        pytest.skip(str(exc))
    return aikit.Model.load(path)


def test_pair_explanation_finds_the_matching_words(minilm: Any, tmp_path: Path) -> None:
    """MiniLM: the pair that drives the similarity is the one a reader would name."""
    a, b = "a cat sat on the mat", "the kitten was sleeping on a rug"
    e = minilm.explain((a, b))
    assert e.kind == "pair" and e.method == "occlusion" and e.target == "similarity"
    assert e.attributions.shape == (len(e.tokens), len(e.tokens_b))
    assert e.tokens[0] == "[CLS]" and e.special[0] and not e.attributions[0].any() and not e.attributions[:, 0].any()
    vectors = minilm.predict([a, b])
    assert e.similarity == pytest.approx(float(vectors[0].vector @ vectors[1].vector), abs=1e-5)
    assert e.top(1)[0][0] == "cat ~ kitten", e.top(4)
    assert [name for name, _ in e.top(2)][1] == "mat ~ rug", e.top(4)
    several = minilm.explain([(a, b), ("my dog loves the park", "the stock market fell today but my dog is happy")])
    assert len(several) == 2 and several[1].top(1)[0][0] == "dog ~ dog"
    page = e.to_html(tmp_path / "pair.html").read_text(encoding="utf-8")
    assert page.count('class="aikit-pair-cell"') == e.attributions.size
    assert e.to_png(tmp_path / "pair.png").read_bytes()[:4] == b"\x89PNG"
    assert e.to_dict()["tokens_b"] == list(e.tokens_b)


def test_pair_scores_are_the_deletion_interaction(minilm: Any) -> None:
    """One cell recomputed by hand from four embeddings: s(A,B) - s(A-i,B) - s(A,B-j) + s(A-i,B-j)."""
    a, b = "the weather is cold", "it is freezing outside"
    e = minilm.explain((a, b))
    i, j = e.tokens.index("cold"), e.tokens_b.index("freezing")

    def without(text: str, tokens: tuple[str, ...], k: int) -> str:
        return " ".join(t for n, t in enumerate(tokens) if n != k and not t.startswith("["))

    def sim(x: str, y: str) -> float:
        u, v = (r.vector / np.linalg.norm(r.vector) for r in minilm.predict([x, y]))
        return float(u @ v)

    a_i, b_j = without(a, e.tokens, i), without(b, e.tokens_b, j)
    expected = sim(a, b) - sim(a_i, b) - sim(a, b_j) + sim(a_i, b_j)
    assert e.attributions[i, j] == pytest.approx(expected, abs=1e-4)
    with pytest.raises(aikit.InputError, match="pairs of texts"):
        minilm.explain("just one text")
    with pytest.raises(aikit.ConfigError, match="does not explain text pairs"):
        minilm.explain((a, b), method="integrated-gradients")


def test_cli_explains_pairs(minilm: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from aikit.cli import app
    from aikit.defaults import default_model_path

    path = str(default_model_path("minilm"))
    done = CliRunner().invoke(
        app,
        ["explain", path, "a cat sat on the mat", "the kitten was sleeping on a rug", "--png", str(tmp_path / "p.png")],
    )
    assert done.exit_code == 0, done.output
    assert "cat ~ kitten" in done.output and (tmp_path / "p.png").is_file()
    odd = CliRunner().invoke(app, ["explain", path, "only one"])
    assert odd.exit_code != 0 and "pairs of texts" in odd.output


def test_docs_table_is_the_benchmark_json() -> None:
    """docs/how-to/explain.md shows exactly what benchmarks/explain_faithfulness.py renders from its JSON."""
    import importlib.util
    import json

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(
        "explain_faithfulness", root / "benchmarks" / "explain_faithfulness.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = json.loads((root / "docs" / "assets" / "explain-faithfulness.json").read_text(encoding="utf-8"))
    page = (root / "docs" / "how-to" / "explain.md").read_text(encoding="utf-8")
    shown = page.split("<!-- explain-faithfulness:begin -->\n")[1].split("\n<!-- explain-faithfulness:end -->")[0]
    assert shown == bench.render(results)
    assert all(r["faithful"] and r["randomization_passed"] for m in results["models"].values() for r in m["rows"])
