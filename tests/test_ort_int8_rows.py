"""``ort-int8-rows`` (per-token int8 on ONNX Runtime) and the measured weight-only kernel choice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aikit
from aikit.errors import ConfigError
from benchmarks.corpus import load_sentences

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

SENTENCES = load_sentences(64)


def _cos(a: Any, b: Any) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.asarray((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))


@pytest.fixture(scope="module")
def minilm_plain(minilm: aikit.Model) -> aikit.Model:
    """MiniLM on ONNX Runtime without the BERT fusions: Q/K/V stay MatMuls the strategy can rewrite."""
    return minilm.to("onnxruntime", threads=2, backend_options={"fusions": False})


@pytest.fixture(scope="module")
def minilm_rows(minilm_plain: aikit.Model) -> aikit.Model:
    return minilm_plain.compress("ort-int8-rows", measure_speed=False)


def _ops(model: aikit.Model) -> list[str]:
    graph = onnx.load(str(model.backend.graph_path()), load_external_data=False).graph  # type: ignore[attr-defined]
    return [n.op_type for n in graph.node]


def test_minilm_quality_bound_without_guard(minilm_plain: aikit.Model, minilm_rows: aikit.Model) -> None:
    # No node kept in float32: every one of the 36 weight MatMuls is int8 with per-token ranges.
    ops = _ops(minilm_rows)
    assert ops.count("MatMulIntegerToFloat") == 36 and "DynamicQuantizeLinear" not in ops
    cos = _cos(minilm_plain.embed(SENTENCES), minilm_rows.embed(SENTENCES))
    assert cos.min() >= 0.99 and cos.mean() >= 0.998  # measured 0.998 / 0.999


def test_minilm_mixed_config_quality(minilm_plain: aikit.Model) -> None:
    # The faster mix the optimize() candidates propose: asymmetric Q/K/V, symmetric FFN rows,
    # per-tensor attention output.
    mixed = minilm_plain.compress(
        "ort-int8-rows:symmetric=*intermediate*|*layer.?/output/dense*,per_tensor=*attention/output*",
        measure_speed=False,
    )
    ops = _ops(mixed)
    assert ops.count("DynamicQuantizeMatMul") == 6 and ops.count("MatMulIntegerToFloat") == 30
    cos = _cos(minilm_plain.embed(SENTENCES), mixed.embed(SENTENCES))
    assert cos.min() >= 0.99 and cos.mean() >= 0.997  # measured 0.997 / 0.998 on 200 sentences


def test_fused_graph_says_qkv_stay_float(minilm: aikit.Model) -> None:
    fused = minilm.to("onnxruntime", threads=2)  # BERT fusions on: Q/K/V inside Attention
    rows = fused.compress("ort-int8-rows", measure_speed=False)
    assert any("6 fused Attention nodes keep their Q/K/V" in n for n in rows.compression_report.notes)


def test_save_load_round_trip_is_identical(minilm_rows: aikit.Model, tmp_path: Path) -> None:
    minilm_rows.save(tmp_path / "rows")
    again = aikit.Model.load(tmp_path / "rows", threads=2)
    assert np.array_equal(np.asarray(again.embed(SENTENCES[:8])), np.asarray(minilm_rows.embed(SENTENCES[:8])))


def test_exclusions_keep_nodes_in_float(minilm_plain: aikit.Model) -> None:
    from aikit_onnxruntime.compress.strategies import OrtInt8Rows, OrtInt8RowsStrategy

    layers = OrtInt8RowsStrategy().guard_layers(minilm_plain.backend, OrtInt8Rows(exclude=("*layer.5/*",)))
    assert len(layers) == 30 and not any("layer.5/" in n for n in layers)
    kept = minilm_plain.compress("ort-int8-rows:exclude=*layer.5/*", measure_speed=False)
    assert _ops(kept).count("MatMulIntegerToFloat") == 30 and _ops(kept).count("MatMul") >= 6


@pytest.mark.parametrize(
    "spec",
    [
        {"exclude": ["x"]},  # a list, not a tuple
        {"exclude": ("",)},
        {"symmetric": "*"},
        {"per_tensor": ("*", 3)},
        {"reduce_range": "yes"},
    ],
)
def test_bad_config_is_a_config_error(spec: dict[str, Any]) -> None:
    from aikit_onnxruntime.compress.strategies import OrtInt8Rows

    with pytest.raises(ConfigError):
        OrtInt8Rows(**spec)


def _tiny_graph(k: int, n: int, seed: int) -> tuple[Any, np.ndarray, np.ndarray]:
    """``Y = X @ W + b`` for a ``[batch, seq, k]`` X, as exporters write it (MatMul, then Add)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((k, n)).astype(np.float32) / np.sqrt(k)
    b = rng.standard_normal(n).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["mm"], name="dense/MatMul"),
            helper.make_node("Add", ["mm", "b"], ["y"], name="dense/Add"),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", n])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), w, b


@pytest.mark.parametrize("symmetric", [(), ("*",)])
def test_rows_keep_small_rows_exact(symmetric: tuple[str, ...]) -> None:
    # One row 1000x larger than the others, as outlier tokens are: a per-tensor range would flatten
    # the small rows to a few codes; per-row ranges keep every row within int8 rounding.
    from aikit_onnxruntime.compress.quantize_rows import rows_int8_model

    model, w, b = _tiny_graph(64, 48, seed=0)
    done = rows_int8_model(model, symmetric=symmetric, reduce_range=False, exclude=())
    assert done == ["dense/MatMul"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((2, 5, 64)).astype(np.float32) + 0.3
    x[0, 0] *= 1000.0
    got = session.run(None, {"x": x})[0]
    want = x @ w + b
    assert got.shape == want.shape
    err = np.abs(got - want).max(axis=-1) / np.abs(x @ w).max(axis=-1)
    assert err.max() < 0.05


def test_per_tensor_nodes_use_one_fused_op_with_the_bias() -> None:
    from aikit_onnxruntime.compress.quantize_rows import rows_int8_model

    model, w, b = _tiny_graph(64, 48, seed=3)
    rows_int8_model(model, symmetric=(), reduce_range=False, exclude=(), per_tensor=("dense/*",))
    assert [n.op_type for n in model.graph.node] == ["DynamicQuantizeMatMul"]  # the bias Add is folded in
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(4).standard_normal((2, 5, 64)).astype(np.float32)
    got, want = session.run(None, {"x": x})[0], x @ w + b
    assert np.abs(got - want).max() < 0.05 * np.abs(x @ w).max()


def test_rows_int8_excludes_by_pattern() -> None:
    from aikit_onnxruntime.compress.quantize_rows import rows_int8_model

    model, _, _ = _tiny_graph(16, 8, seed=2)
    assert rows_int8_model(model, symmetric=(), reduce_range=False, exclude=("dense/*",)) == []
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Add"]


# -- int8/int4-weight-only kernel=auto: measured once per machine, cached on disk -----------------


@pytest.fixture
def kernel_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from aikit_quant import kernel_choice

    monkeypatch.setenv("AIKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(kernel_choice, "_memo", {})
    return tmp_path / "kernel-choice.json"


def test_kernel_choice_measures_once_and_caches_on_disk(kernel_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aikit_quant import kernel_choice

    calls: list[str] = []

    def timer(kind: str) -> dict[str, float]:
        calls.append(kind)
        return {"packed": 0.5, "unpacked": 0.01} if kind == "int8" else {"packed": 0.01, "unpacked": 0.5}

    assert kernel_choice.packed_is_faster("int8", timer=timer) is False
    assert kernel_choice.packed_is_faster("int4", timer=timer) is True
    assert kernel_choice.packed_is_faster("int8", timer=timer) is False
    assert calls == ["int8", "int4"]
    table = json.loads(kernel_cache.read_text())
    assert {e["kind"]: e["packed"] for e in table.values()} == {"int8": False, "int4": True}
    monkeypatch.setattr(kernel_choice, "_memo", {})  # a new process: reads the file, measures nothing
    assert kernel_choice.packed_is_faster("int4", timer=timer) is True and calls == ["int8", "int4"]


def test_kernel_choice_survives_a_bad_cache_and_a_failing_kernel(kernel_cache: Path) -> None:
    from aikit_quant import kernel_choice

    kernel_cache.write_text("{not json")

    def broken(kind: str) -> dict[str, float]:
        raise RuntimeError("no packed kernel in this build")

    assert kernel_choice.packed_is_faster("int8", timer=broken) is False
    assert "no packed kernel" in next(iter(json.loads(kernel_cache.read_text()).values()))["error"]
    with pytest.raises(ValueError):
        kernel_choice.packed_is_faster("int3")


def test_kernel_auto_follows_the_measurement(kernel_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aikit_quant import kernel_choice
    from aikit_quant.configs import Int4WeightOnly, Int8WeightOnly
    from aikit_quant.strategies import packed_kernel

    def timer(kind: str) -> dict[str, float]:
        return {"packed": 1.0, "unpacked": 2.0} if kind == "int4" else {"packed": 3.0, "unpacked": 2.0}

    monkeypatch.setattr(kernel_choice, "measure", timer)
    assert packed_kernel(Int4WeightOnly()) is True
    assert packed_kernel(Int8WeightOnly()) is False
    assert packed_kernel(Int8WeightOnly(kernel="packed")) is True  # an explicit choice is not measured


def test_kernel_measurement_runs_on_this_machine(kernel_cache: Path) -> None:
    from aikit_quant import kernel_choice

    times = kernel_choice.measure("int8")
    assert set(times) == {"packed", "unpacked"} and all(t > 0 for t in times.values())
