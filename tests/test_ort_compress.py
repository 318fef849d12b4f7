"""ORT-native compression strategies, the accuracy guard on ONNX graphs, and artifacts of ORT models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aikit
from aikit.errors import BackendError, CompressionError

pytest.importorskip("onnxruntime")

CALIBRATION = [
    f"the {a} {b} is {c} in {d}"
    for a in ("cat", "dog", "bird", "fish")
    for b in ("book", "film", "model", "city")
    for c in ("good", "bad", "fast", "small")
    for d in ("paris", "london")
][:48]


@pytest.fixture(scope="module", autouse=True)
def ort_cache(private_aikit_cache: Path) -> Path:
    return private_aikit_cache


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Any) -> aikit.Model:
    return aikit.Model.load(
        tiny_model_dir("bert-embedding"), task="feature-extraction", backend="onnxruntime", threads=1
    )


@pytest.fixture(scope="module")
def llm(tiny_model_dir: Any) -> aikit.Model:
    return aikit.Model.load(tiny_model_dir("llama-causal-lm"), backend="onnxruntime", threads=1)


def _ops(model: aikit.Model) -> set[str]:
    import onnx

    return {n.op_type for n in onnx.load(str(model.backend.graph_path()), load_external_data=False).graph.node}


def test_strategies_are_registered_for_onnxruntime_only() -> None:
    for name in ("ort-int8-dynamic", "ort-int8-static", "ort-int8-weight-only", "ort-int4-weight-only"):
        assert aikit.get_strategy(name).backends == frozenset({"onnxruntime"})


def test_int8_dynamic_quantizes_and_reports(embedder: aikit.Model) -> None:
    small = embedder.compress("ort-int8-dynamic", calibration=CALIBRATION, measure_speed=False)
    assert small.backend_name == "onnxruntime"
    assert {"DynamicQuantizeLinear", "MatMulInteger"} & _ops(small) or "QAttention" in _ops(small)
    report = small.compression_report
    assert report.quality_metric == "1 - cosine_min" and report.quality_drop < 0.2
    assert any("ONNX graph size" in n for n in report.notes)
    graphs = {p.name: p.stat().st_size for p in small.backend.graph_path().parent.glob("model.onnx*")}  # type: ignore[attr-defined]
    assert report.size_after_bytes == sum(graphs.values())  # the ONNX files, not a torch module
    assert 0 < report.size_after_bytes < report.size_before_bytes
    assert "DynamicQuantizeLinear" not in _ops(embedder)  # the original is untouched


def test_guard_keeps_nodes_in_float_until_the_bound_holds(embedder: aikit.Model) -> None:
    plain = embedder.compress("ort-int8-dynamic", calibration=CALIBRATION, measure_speed=False)
    bound = plain.compression_report.quality_drop / 4
    guarded = embedder.compress(
        "ort-int8-dynamic", calibration=CALIBRATION, max_quality_drop=bound, measure_speed=False
    )
    report = guarded.compression_report
    assert report.excluded_layers and report.quality_drop <= bound
    assert tuple(guarded.transformations[-1]["exclude"]) == tuple(report.excluded_layers)


def test_static_int8_needs_and_uses_calibration(embedder: aikit.Model) -> None:
    with pytest.raises(CompressionError, match="calibration"):
        embedder.compress("ort-int8-static")
    small = embedder.compress("ort-int8-static", calibration=CALIBRATION, measure_speed=False)
    assert "QuantizeLinear" in _ops(small) and "DequantizeLinear" in _ops(small)
    cosines = [
        float(a.vector @ b.vector / np.linalg.norm(a.vector) / np.linalg.norm(b.vector))
        for a, b in zip(embedder.predict(CALIBRATION[:8]), small.predict(CALIBRATION[:8]))
    ]
    assert min(cosines) > 0.9


@pytest.mark.parametrize("strategy", ["ort-int4-weight-only", "ort-int8-weight-only"])
def test_weight_only_on_a_decoder_generates(llm: aikit.Model, strategy: str) -> None:
    small = llm.compress(strategy, calibration=CALIBRATION[:8], measure_speed=False)
    assert "MatMulNBits" in _ops(small)
    result = small.predict("hello world", max_new_tokens=5)
    assert len(result.token_ids) <= 5 and result.finish_reason in ("length", "stop")


def test_torch_strategy_on_ort_model_says_where_to_go(embedder: aikit.Model) -> None:
    with pytest.raises(CompressionError, match="ort-int8-dynamic"):
        embedder.compress("int8-dynamic")


def test_compressed_artifact_loads_without_export(
    embedder: aikit.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = embedder.compress("ort-int8-dynamic", calibration=CALIBRATION, measure_speed=False)
    saved = small.save(tmp_path / "art")
    assert (saved / "model.onnx").is_file()
    import aikit_onnxruntime.export.build as build

    monkeypatch.setattr(build, "build_export", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-exported")))
    again = aikit.Model.load(saved)
    assert again.backend_name == "onnxruntime" and again.transformations == small.transformations
    np.testing.assert_allclose(again.embed(CALIBRATION[:4]), small.embed(CALIBRATION[:4]), atol=1e-6)


def test_decoder_artifact_round_trip(llm: aikit.Model, tmp_path: Path) -> None:
    saved = llm.save(tmp_path / "llm")
    again = aikit.Model.load(saved)
    assert (
        again.predict("hello world", max_new_tokens=6).token_ids
        == llm.predict("hello world", max_new_tokens=6).token_ids
    )


def test_torch_quantized_model_says_why_it_cannot_move(tiny_model_dir: Any) -> None:
    torch_model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"), threads=1)
    small = torch_model.compress("int8-dynamic", measure_speed=False)
    with pytest.raises(BackendError) as info:
        small.to("onnxruntime", backend_options={"cache": False})
    text = str(info.value) + "".join(getattr(info.value, "__notes__", []))
    # Refused before any export: the step is named, and the target's own strategies are offered.
    assert "'int8-dynamic'" in text and "would drop" in text and "ort-int8-dynamic" in text


def test_torch_pruned_model_moves_to_ort(tiny_model_dir: Any) -> None:
    torch_model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"), threads=1)
    pruned = torch_model.compress("prune-structured:ffn=0.5", measure_speed=False)
    moved = pruned.to("onnxruntime")
    assert moved.transformations == pruned.transformations
    a, b = pruned.predict(CALIBRATION[:6]), moved.predict(CALIBRATION[:6])
    assert [x.label for x in a] == [x.label for x in b]
    np.testing.assert_allclose([x.score for x in a], [x.score for x in b], atol=1e-5)


def test_quantizing_leaves_the_applications_logging_alone(tmp_path: Path) -> None:
    """onnxruntime's ``matmul_nbits_quantizer`` calls ``logging.basicConfig(level=INFO)`` on import and its
    dynamic quantizer calls ``logging.warning`` on the root logger; in a program without logging set up
    (pytest has its own handlers, so a child process) that used to leave a stderr handler on the
    root logger and print the quantizers' messages. They now go to aikit's logger at DEBUG."""
    import subprocess
    import sys

    script = f"""
import logging
from pathlib import Path
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from aikit_onnxruntime.compress import quantize

seen = []
class Seen(logging.Handler):
    def emit(self, record):
        seen.append(record.getMessage())
aikit_log = logging.getLogger("aikit.onnxruntime")
aikit_log.addHandler(Seen())
aikit_log.setLevel(logging.DEBUG)
w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32), "w")
graph = helper.make_graph(
    [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], [w],
)
src, dst = Path({str(tmp_path)!r}) / "src.onnx", Path({str(tmp_path)!r}) / "dst.onnx"
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
quantize.weight_only(src, dst, bits=4, block_size=32, accuracy_level=0, exclude=[])
assert any(n.op_type == "MatMulNBits" for n in onnx.load(str(dst)).graph.node)
quantize.dynamic_int8(src, dst, per_channel=False, reduce_range=False, exclude=[], op_types=["MatMul"])
assert any(n.op_type == "MatMulInteger" for n in onnx.load(str(dst)).graph.node)
root = logging.getLogger()
print("ROOT", len(root.handlers), logging.getLevelName(root.level))
print("REROUTED", any("pre-processing" in m for m in seen))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ROOT 0 WARNING" in done.stdout
    assert "REROUTED True" in done.stdout  # the dynamic quantizer's warning, at DEBUG on aikit's logger
    assert done.stderr == ""
