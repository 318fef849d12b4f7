"""``Model.load("model.onnx")`` for ONNX files made outside aikit (torch, a Keras-style NHWC graph)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aikit
from aikit.errors import ModelLoadError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

LABELS = [f"digit-{i}" for i in range(10)]


@pytest.fixture(scope="module")
def torch_cnn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """A plain torch CNN and its ONNX file exported by torch itself (not through aikit)."""
    import torch

    from aikit.testing.tiny import TinyCNN  # type: ignore[attr-defined]

    torch.manual_seed(1)
    net = TinyCNN().eval()
    path = tmp_path_factory.mktemp("cnn") / "cnn.onnx"
    torch.onnx.export(
        net, (torch.zeros(1, 1, 8, 8),), str(path), input_names=["input"], output_names=["output"],
        dynamic_shapes=({0: torch.export.Dim("n")},), dynamo=True, verbose=False,
    )  # fmt: skip
    return net, path


def keras_style_file(folder: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A graph built with onnx.helper the way tf2onnx writes a Keras classifier: NHWC input, softmax output."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.standard_normal((12 * 12 * 3, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input_1"], ["flat"], axis=1, name="flatten"),
            helper.make_node("MatMul", ["flat", "dense/kernel"], ["mm"], name="dense/MatMul"),
            helper.make_node("Add", ["mm", "dense/bias"], ["dense_1"], name="dense/BiasAdd"),
        ],
        "keras_model",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["unk__1", 12, 12, 3])],
        [helper.make_tensor_value_info("dense_1", TensorProto.FLOAT, ["unk__1", 4])],
        initializer=[numpy_helper.from_array(w, "dense/kernel"), numpy_helper.from_array(b, "dense/bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tf2onnx")
    path = folder / "keras.onnx"
    onnx.save(model, str(path))
    return path, w, b


def test_torch_exported_cnn(torch_cnn: tuple[Any, Path]) -> None:
    import torch

    net, path = torch_cnn
    pre = aikit.ImagePreprocess(size=(8, 8), grayscale=True)
    model = aikit.Model.load(path, task="image-classification", labels=LABELS, preprocess=pre)
    assert model.backend_name == "onnxruntime"  # the only backend that accepts ONNX files
    images = [np.random.default_rng(i).integers(0, 256, (8, 8), dtype=np.uint8) for i in range(5)]
    got = model.predict(images)
    with torch.no_grad():
        logits = net(torch.from_numpy(np.stack([pre(im) for im in images]))).numpy()
    assert [r.label for r in got] == [LABELS[i] for i in logits.argmax(1)]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose([r.score for r in got], probs.max(1), atol=1e-5)


def test_keras_style_nhwc_graph(tmp_path: Path) -> None:
    path, w, b = keras_style_file(tmp_path)
    pre = aikit.ImagePreprocess(size=(12, 12))
    labels = ["a", "b", "c", "d"]
    model = aikit.Model.load(path, task="image-classification", labels=labels, preprocess=pre)
    image = np.random.default_rng(5).integers(0, 256, (20, 16, 3), dtype=np.uint8)
    result = model.predict(image)
    nhwc = pre(image).transpose(1, 2, 0)[None]  # what the Keras model expects
    logits = nhwc.reshape(1, -1) @ w + b
    assert result.label == labels[int(logits.argmax())]
    assert model.describe()["graph"] == "single"


def test_artifact_of_an_onnx_file_round_trips(tmp_path: Path) -> None:
    path, _, _ = keras_style_file(tmp_path)
    pre = aikit.ImagePreprocess(size=(12, 12))
    model = aikit.Model.load(path, task="image-classification", labels=["a", "b", "c", "d"], preprocess=pre)
    image = np.random.default_rng(2).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    saved = model.save(tmp_path / "artifact")
    assert (saved / "keras.onnx").is_file()
    again = aikit.Model.load(saved)
    assert again.backend_name == "onnxruntime"
    assert again.predict(image) == model.predict(image)


def test_garbage_file_is_a_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not an onnx model at all" * 10)
    with pytest.raises(ModelLoadError, match="bad.onnx"):
        aikit.Model.load(bad, task="image-classification")


def test_external_data_outside_the_folder_is_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.zeros(16, dtype=np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    tensor = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 4])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../secret.bin"), ("offset", "0"), ("length", "64")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[tensor],
    )
    path = folder / "evil.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ModelLoadError, match="outside the model's folder"):
        aikit.Model.load(path, task="image-classification")


def test_image_model_without_a_preprocess_says_what_to_pass(torch_cnn: tuple[Any, Path]) -> None:
    from aikit.errors import InputError

    _, path = torch_cnn
    model = aikit.Model.load(path, task="image-classification")
    with pytest.raises(InputError, match="preprocess"):
        model.predict(np.zeros((8, 8), dtype=np.uint8))
