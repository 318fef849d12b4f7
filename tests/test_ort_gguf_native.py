"""``ort-gguf-native``: GGUF Q4_0 / Q4_1 / Q8_0 blocks run as ``MatMulNBits`` without re-quantization.

Unit tests build synthetic blocks with ``gguf.quants.quantize`` and check, through ONNX Runtime,
that the packed operator computes exactly ``gguf.quants.dequantize``'s weights (identity input,
so the output *is* the weight matrix). The slow tests run the packaged SmolLM2 (a Q4_1 GGUF):
greedy decoding must give the same 32 tokens as the de-quantized float32 model on torch, and
the first step's logits must agree within 2e-3 (summation order only; about 2.5e-4 measured).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

pytest.importorskip("onnxruntime")
gguf = pytest.importorskip("gguf")

from aikit_onnxruntime.gguf.blocks import HIGH_FACTOR, PackedWeight, pack_rows  # noqa: E402
from aikit_onnxruntime.gguf.native import GgufIndex, gguf_native_graph  # noqa: E402

K, N = 96, 48


def _blocks(kind: str, seed: int, n: int = N) -> NDArray[np.uint8]:
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((n, K)) * 0.05).astype(np.float32)
    w[0, :32] = 0.125  # a flat block: Q4_1 stores d == 0, every weight m
    return np.asarray(gguf.quants.quantize(w, getattr(gguf.GGMLQuantizationType, kind)))


def _dequant(kind: str, raw: NDArray[np.uint8]) -> NDArray[np.float32]:
    return np.asarray(gguf.quants.dequantize(raw, getattr(gguf.GGMLQuantizationType, kind)), dtype=np.float32)


def _session(model: Any) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _single_node(kind: str, raw: NDArray[np.uint8], q4_1: str = "split", wide: str = "8bit") -> NDArray[np.float32]:
    """The weight one ``MatMulNBits`` node computes from ``pack_rows`` (``[N, K]``, via an identity input)."""
    whole = pack_rows(kind, raw, q4_1=q4_1, wide=wide)
    weight = _run_node(whole)
    if whole.high is not None:  # the two-4bit forms: the high nibbles' operator, times 16, is added
        assert whole.high.scales is whole.scales  # one scale tensor for both halves
        weight = weight + np.float32(HIGH_FACTOR) * _run_node(whole.high)
    if whole.offsets is not None:  # the split forms add the offset outside the operator
        weight = weight + np.repeat(whole.offsets, whole.block, axis=1)
    return weight


def _run_node(packed: PackedWeight) -> NDArray[np.float32]:
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(packed.packed, "B"), numpy_helper.from_array(packed.scales, "S")]
    if packed.zero_points is not None:
        inits.append(numpy_helper.from_array(packed.zero_points, "Z"))
    node = helper.make_node(
        "MatMulNBits",
        ["A", *(t.name for t in inits)],
        ["Y"],
        domain="com.microsoft",
        K=packed.k,
        N=packed.n,
        bits=packed.bits,
        block_size=packed.block,
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["b", packed.k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["b", packed.n])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    out = _session(model).run(None, {"A": np.eye(packed.k, dtype=np.float32)})[0]
    return np.asarray(out, dtype=np.float32).T


@pytest.mark.parametrize(
    ("kind", "wide"),
    [
        ("Q4_0", "8bit"),
        ("Q8_0", "8bit"),
        ("Q8_0", "two-4bit"),
        ("Q5_0", "8bit"),
        ("Q5_0", "two-4bit"),
        ("Q5_1", "8bit"),
        ("Q5_1", "two-4bit"),
    ],
)
def test_single_node_reproduces_dequantize_exactly(kind: str, wide: str) -> None:
    raw = _blocks(kind, 1)
    np.testing.assert_array_equal(_single_node(kind, raw, wide=wide), _dequant(kind, raw))


def _random_blocks(
    kind: str, rows: int, cols: int, rng: np.random.Generator, *, signed: bool = False
) -> NDArray[np.uint8]:
    """``rows`` GGUF rows of ``cols`` weights: ``gguf.quants.quantize`` where gguf-py can (``Q4_0``, ``Q4_1``,
    ``Q8_0``, ``Q5_0``, ``Q5_1``),
    else random K-quant super-blocks: every code, high-bit and sub-block scale / min bit pattern
    (``Q6_K``'s and ``Q3_K``'s signed scales included), with float16 ``d`` (and ``dmin``) small enough
    for a working network, of either sign when ``signed``."""
    if kind in ("Q4_0", "Q4_1", "Q8_0", "Q5_0", "Q5_1"):
        w = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
        return np.asarray(gguf.quants.quantize(w, getattr(gguf.GGMLQuantizationType, kind)))
    size, where, scale = {
        "Q2_K": (84, slice(80, 84), 1e-3),  # d * sc * q - dmin * m: sc, m < 16, q < 4
        "Q3_K": (110, slice(108, 110), 3e-4),  # d * (sc - 32) * (q - 4): |sc - 32| <= 32, |q - 4| <= 4
        "Q4_K": (144, slice(0, 4), 2e-4),  # d * sc * q - dmin * m: sc, m < 64, q < 16
        "Q5_K": (176, slice(0, 4), 1e-4),  # d * sc * q - dmin * m: sc, m < 64, q < 32
        "Q6_K": (210, slice(208, 210), 2e-5),  # d * sc * (q - 32): |sc| <= 128, |q - 32| <= 32
    }[kind]
    raw = rng.integers(0, 256, (rows, cols // 256, size), dtype=np.uint8)
    halves = rng.standard_normal((rows, cols // 256, (where.stop - where.start) // 2)) * scale
    halves = halves if signed else np.abs(halves)
    raw[..., where] = halves.astype(np.float16).view(np.uint8)
    return raw.reshape(rows, -1)


def _k_quant_rows(kind: str, seed: int) -> NDArray[np.uint8]:
    """Random K-quant super-blocks, two per row (K = 512), signed ``d`` (see :func:`_random_blocks`)."""
    return _random_blocks(kind, N, 512, np.random.default_rng(seed), signed=True)


@pytest.mark.parametrize(
    ("kind", "wide"),
    [
        ("Q2_K", ""),
        ("Q3_K", ""),
        ("Q4_K", ""),
        ("Q5_K", "two-4bit"),
        ("Q5_K", "8bit"),
        ("Q6_K", "two-4bit"),
        ("Q6_K", "8bit"),
    ],
)
def test_k_quants_reproduce_dequantize_exactly(kind: str, wide: str) -> None:
    """Random super-blocks (every scale / min / code bit pattern, finite d) de-quantize bit for bit."""
    rows = _k_quant_rows(kind, 11)
    packed = pack_rows(kind, rows, wide=wide or "two-4bit")
    assert packed.k == 512 and packed.block == (32 if kind in ("Q4_K", "Q5_K") else 16)
    np.testing.assert_array_equal(_single_node(kind, rows, wide=wide or "two-4bit"), _dequant(kind, rows))


@pytest.mark.parametrize("kind", ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"])
def test_graph_rewrite_maps_k_quants(kind: str, tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rows = _k_quant_rows(kind, 10)
    _write_gguf(tmp_path / "k.gguf", {"w": (kind, rows)})
    weight = _dequant(kind, rows)
    graph = helper.make_graph(  # two products of the weight: two matrices to map
        [helper.make_node("MatMul", ["A", "w"], [y], name=f"/{y}/MatMul") for y in ("Y", "Z")],
        "g",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["b", 512])],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, ["b", N]) for y in ("Y", "Z")],
        [numpy_helper.from_array(np.ascontiguousarray(weight.T), "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "src.onnx"))
    report = gguf_native_graph(
        tmp_path / "src.onnx", tmp_path / "dst.onnx", GgufIndex(tmp_path / "k.gguf"), accuracy_level=0, types=(kind,)
    )
    assert report.mapped == {"/Y/MatMul": kind, "/Z/MatMul": kind}
    rewritten = onnx.load(str(tmp_path / "dst.onnx"))
    for got in _session(rewritten).run(None, {"A": np.eye(512, dtype=np.float32)}):
        np.testing.assert_array_equal(got.T, weight)
    two = kind in ("Q5_K", "Q6_K")
    for y in ("Y", "Z"):
        ops = [n for n in rewritten.graph.node if n.op_type == "MatMulNBits" and n.name.startswith(f"/{y}/")]
        assert len(ops) == (2 if two else 1)
        assert len({n.input[2] for n in ops}) == 1  # the two halves of a 5/6-bit form read one scale tensor
    # every high half is multiplied by the graph's one HIGH_FACTOR constant
    factors = [t for t in rewritten.graph.initializer if t.dims == [] and t.data_type == TensorProto.FLOAT]
    muls = [n for n in rewritten.graph.node if n.op_type == "Mul"]
    assert len(factors) == (1 if two else 0) and len(muls) == (2 if two else 0)
    assert all(factors[0].name in n.input for n in muls)


def test_q4_1_forms_reproduce_dequantize() -> None:
    raw = _blocks("Q4_1", 2)
    want = _dequant("Q4_1", raw)
    # split: d * q in the operator, + m after: the same two float32 operations dequantize does
    np.testing.assert_array_equal(_single_node("Q4_1", raw, q4_1="split"), want)
    # float zero point -m/d: d * (q + m/d) is d * q + m up to float32 rounding of the weight
    np.testing.assert_allclose(_single_node("Q4_1", raw, q4_1="zero-point"), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["Q4_1", "Q5_1", "Q2_K", "Q4_K", "Q5_K"])
def test_offset_types_run_centred_codes_on_the_default_zero_point(kind: str) -> None:
    """``d * q + m`` runs as ``d * (q - 8) + (m + 8 d)``: no zero-point input, offsets moved by 8 scales,
    and an identity input still gives ``dequantize``'s weights bit for bit."""
    rows = _blocks(kind, 4) if kind in ("Q4_1", "Q5_1") else _k_quant_rows(kind, 12)
    plain, centred = pack_rows(kind, rows, centre=False), pack_rows(kind, rows)
    assert plain.zero_points is not None and not plain.zero_points.any()
    assert centred.zero_points is None and centred.offsets is not None and plain.offsets is not None
    moved = plain.offsets.astype(np.float64) + 8 * plain.scales.astype(np.float64)
    np.testing.assert_array_equal(centred.offsets, moved)  # float32 holds every sum exactly
    np.testing.assert_array_equal(centred.packed, plain.packed)
    np.testing.assert_array_equal(_single_node(kind, rows, wide="two-4bit"), _dequant(kind, rows))


def test_a_block_whose_moved_offset_would_round_keeps_zero_point_0() -> None:
    """``m = 1024`` with ``d = 2^-24`` (float16's smallest): ``m + 8 d`` needs 32 significant bits, so
    the weight keeps zero points 0 and its own offsets, and still reproduces ``dequantize``."""
    raw = _blocks("Q4_1", 5).reshape(N, -1, 20).copy()
    raw[3, 1, 0:2] = np.array([2.0**-24], dtype=np.float16).view(np.uint8)
    raw[3, 1, 2:4] = np.array([1024.0], dtype=np.float16).view(np.uint8)
    raw = raw.reshape(N, -1)
    packed = pack_rows("Q4_1", raw)
    assert packed.zero_points is not None and not packed.zero_points.any()
    assert packed.offsets is not None and packed.offsets[3, 1] == 1024.0
    np.testing.assert_array_equal(_single_node("Q4_1", raw), _dequant("Q4_1", raw))


def _write_gguf(path: Path, tensors: dict[str, tuple[str, NDArray[Any]]]) -> None:
    writer = gguf.GGUFWriter(str(path), "llama")
    for name, (kind, data) in tensors.items():
        writer.add_tensor(name, data, raw_dtype=getattr(gguf.GGMLQuantizationType, kind))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_graph_rewrite_traces_permuted_and_concatenated_rows(tmp_path: Path) -> None:
    """Rows regrouped as exporters do (q/k/v concatenated, rows permuted) still map, exactly; other types stay."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    q, k, down = _blocks("Q4_1", 3), _blocks("Q4_1", 4, n=16), _blocks("Q4_0", 5)
    head = _blocks("Q8_0", 6)
    f16 = (np.random.default_rng(7).standard_normal((N, K)) * 0.05).astype(np.float16)
    _write_gguf(
        tmp_path / "m.gguf",
        {"q": ("Q4_1", q), "k": ("Q4_1", k), "down": ("Q4_0", down), "head": ("Q8_0", head), "other": ("F16", f16)},
    )
    perm = np.random.default_rng(8).permutation(N)
    weights = {
        "qk": np.concatenate([_dequant("Q4_1", q)[perm], _dequant("Q4_1", k)]),  # [N + 16, K]
        "down": _dequant("Q4_0", down),
        "head": _dequant("Q8_0", head),
        "other": f16.astype(np.float32),
    }
    nodes, inits, outs = [], [], []
    for name, w in weights.items():
        inits.append(numpy_helper.from_array(np.ascontiguousarray(w.T), f"{name}.weight"))
        nodes.append(helper.make_node("MatMul", ["A", f"{name}.weight"], [name], name=f"/{name}/MatMul"))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["b", w.shape[0]]))
    # a tied embedding: the same Q8_0 table gathered by token id
    inits.append(numpy_helper.from_array(weights["head"], "embed.weight"))
    nodes.append(helper.make_node("Gather", ["embed.weight", "ids"], ["embedded"], name="/embed/Gather"))
    outs.append(helper.make_tensor_value_info("embedded", TensorProto.FLOAT, ["t", K]))
    # onnxruntime-genai's form of the tie: Gather(Transpose(lm_head weight))
    nodes.append(helper.make_node("Transpose", ["head.weight"], ["head.table"], name="/tied/Transpose", perm=[1, 0]))
    nodes.append(helper.make_node("Gather", ["head.table", "ids"], ["tied"], name="/tied/Gather"))
    outs.append(helper.make_tensor_value_info("tied", TensorProto.FLOAT, ["t", K]))
    ins = [
        helper.make_tensor_value_info("A", TensorProto.FLOAT, ["b", K]),
        helper.make_tensor_value_info("ids", TensorProto.INT64, ["t"]),
    ]
    graph = helper.make_graph(nodes, "g", ins, outs, inits)
    ids = np.arange(N, dtype=np.int64)[::-1].copy()
    feed = {"A": np.eye(K, dtype=np.float32), "ids": ids}
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "src.onnx"))

    report = gguf_native_graph(
        tmp_path / "src.onnx",
        tmp_path / "dst.onnx",
        GgufIndex(tmp_path / "m.gguf"),
        accuracy_level=0,
        types=("Q4_0", "Q4_1"),
    )
    assert report.mapped == {"/qk/MatMul": "Q4_1", "/down/MatMul": "Q4_0"}
    assert "Q8_0 not mapped" in report.kept["/head/MatMul"]
    assert "not from a mapped GGUF tensor" in report.kept["/other/MatMul"]
    assert report.float_bytes == 2 * N * K * 4
    assert report.gathers == {}  # Q8_0 not asked for
    rewritten = onnx.load(str(tmp_path / "dst.onnx"))
    assert sum(n.op_type == "MatMulNBits" for n in rewritten.graph.node) == 2
    got = dict(zip([o.name for o in outs], _session(rewritten).run(None, feed), strict=True))
    for name, w in weights.items():
        np.testing.assert_array_equal(got[name].T, w, err_msg=name)
    np.testing.assert_array_equal(got["embedded"], weights["head"][ids])

    with_head = gguf_native_graph(
        tmp_path / "src.onnx",
        tmp_path / "dst8.onnx",
        GgufIndex(tmp_path / "m.gguf"),
        accuracy_level=0,
        types=("Q4_0", "Q4_1", "Q8_0"),
    )
    assert with_head.mapped["/head/MatMul"] == "Q8_0"
    two_halves = onnx.load(str(tmp_path / "dst8.onnx"))
    assert sum(n.op_type == "MatMulNBits" for n in two_halves.graph.node) == 4  # Q8_0 as two exact 4-bit halves
    head, embedded, tied = _session(two_halves).run(["head", "embedded", "tied"], feed)
    np.testing.assert_array_equal(head.T, weights["head"])
    # tied tables are gathered from their blocks too (exact), and their float32 copies are gone
    assert with_head.gathers == {"/embed/Gather": "Q8_0", "/tied/Gather": "Q8_0"}
    np.testing.assert_array_equal(embedded, weights["head"][ids])
    np.testing.assert_array_equal(tied, weights["head"][ids])
    assert not {"embed.weight", "head.weight"} & {t.name for t in two_halves.graph.initializer}
    assert "Transpose" not in {n.op_type for n in two_halves.graph.node}


# ------------------------------------------------------------------ the packaged SmolLM2 (Q4_1 GGUF)

PROMPTS = ("The capital of France is", "def fibonacci(n):", "Once upon a time, a small robot")


def _greedy(model: Any, text: str, steps: int = 32) -> list[int]:
    from aikit.contracts.options import GenerationOptions

    ids = np.array([model.parts.tokenizer(text)["input_ids"]], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    return [int(t[0]) for t in model.backend.generate(feed, GenerationOptions(max_new_tokens=steps))]


@pytest.fixture(scope="module")
def native(smollm2: Any) -> Any:
    return smollm2.to("onnxruntime").compress("ort-gguf-native", measure_speed=False)


@pytest.fixture(scope="module")
def reference(smollm2: Any) -> dict[str, list[int]]:
    return {p: _greedy(smollm2, p) for p in PROMPTS}


@pytest.mark.slow
def test_smollm2_greedy_tokens_match_the_float32_model(
    smollm2: Any, native: Any, reference: dict[str, list[int]]
) -> None:
    import torch

    for prompt in PROMPTS:
        assert _greedy(native, prompt) == reference[prompt], prompt
        ids = np.array([smollm2.parts.tokenizer(prompt)["input_ids"]], dtype=np.int64)
        with torch.inference_mode():
            want = smollm2.backend.torch_module()(input_ids=torch.from_numpy(ids)).logits.float().numpy()
        got = native.backend.decoder.logits(ids, np.ones_like(ids))
        assert float(np.abs(got - want).max()) < 2e-3, prompt
    notes = " ".join(native.compression_report.notes)
    assert "151 MatMuls run the GGUF's own blocks (150 Q4_1, 1 Q8_0)" in notes
    assert "1 Q8_0" in notes  # the tied Q8_0 head runs its own blocks too (two exact 4-bit halves)
    assert "1 embedding lookups read the GGUF's blocks (GatherBlockQuantized, Q8_0)" in notes


@pytest.mark.slow
def test_smollm2_requantized_int4_departs(smollm2: Any, reference: dict[str, list[int]]) -> None:
    """The same check fails for ``ort-int4-weight-only`` (re-quantized weights): the test can tell."""
    int4 = smollm2.to("onnxruntime").compress("ort-int4-weight-only", measure_speed=False)
    assert any(_greedy(int4, p) != reference[p] for p in PROMPTS)


@pytest.mark.slow
def test_smollm2_native_round_trip(native: Any, reference: dict[str, list[int]], tmp_path: Path) -> None:
    import aikit

    back = aikit.Model.load(native.save(tmp_path / "smol-gguf-native"))
    for prompt in PROMPTS:
        assert _greedy(back, prompt) == reference[prompt], prompt


@pytest.mark.slow
def test_smollm2_optimize_candidates_and_saved_fp32_graph(smollm2: Any, tmp_path: Path) -> None:
    """A GGUF model gets both ``ort-gguf-native`` proposals; a saved float32 graph still finds its GGUF
    (the artifact's manifest keeps the source it was loaded from)."""
    from aikit_onnxruntime.gguf.candidates import propose_gguf_candidates

    import aikit
    from aikit import Candidate

    proposed: list[Candidate] = []
    propose_gguf_candidates(smollm2, proposed.append)
    assert [c.strategies for c in proposed] == [("ort-gguf-native",), ("ort-gguf-native:accuracy_level=4",)]
    fp32 = aikit.Model.load(smollm2.to("onnxruntime").save(tmp_path / "smol-fp32"))
    native = fp32.compress("ort-gguf-native", measure_speed=False)
    assert "151 MatMuls run the GGUF's own blocks" in " ".join(native.compression_report.notes)


@pytest.mark.slow
def test_model_without_a_gguf_is_refused(minilm: Any) -> None:
    from aikit.errors import CompressionError

    with pytest.raises(CompressionError, match="needs the GGUF file the model came from"):
        minilm.to("onnxruntime").compress("ort-gguf-native", measure_speed=False)


# ------------------------------------------------------------------ int8 activations (accuracy_level=4)


def test_accuracy_level_option_is_validated() -> None:
    from aikit_onnxruntime.settings import OrtSettings

    from aikit.errors import ConfigError

    assert OrtSettings.from_options({}).accuracy_level is None
    assert OrtSettings.from_options({"accuracy_level": 4}).accuracy_level == 4
    for bad in (1, 2, True, "4"):
        with pytest.raises(ConfigError, match="accuracy_level must be 0"):
            OrtSettings.from_options({"accuracy_level": bad})


@pytest.mark.slow
def test_accuracy_level_is_refused_off_the_gguf_path(minilm_path: Any) -> None:
    """Asked for a model that does not run a GGUF's own blocks, the option raises (before any export)
    rather than being ignored."""
    import aikit
    from aikit.errors import ConfigError

    with pytest.raises(ConfigError, match="applies to Model.load"):
        aikit.Model.load(
            minilm_path, task="feature-extraction", backend="onnxruntime", backend_options={"accuracy_level": 4}
        )


def _held_out(tokenizer: Any, windows: int = 8, length: int = 256) -> list[list[int]]:
    """``windows`` windows of ``length`` tokens of Python's docs (``aikit.sample_text``), as llm_bench scores."""
    from aikit.sample_text import load_sentences

    texts = []
    for w in range(windows):
        ids: list[int] = []
        sentences = load_sentences(400, seed=100 + w)
        while len(ids) < length and sentences:
            ids += tokenizer(" " + sentences.pop(), add_special_tokens=False)["input_ids"]
        texts.append(ids[:length])
    return texts


def _perplexity(model: Any, texts: list[list[int]]) -> float:
    nll, count = 0.0, 0
    for ids in texts:
        x = np.asarray([ids], dtype=np.int64)
        logits = model.backend.forward({"input_ids": x, "attention_mask": np.ones_like(x)})["logits"]
        logits = logits[0, :-1].astype(np.float64)
        peak = logits.max(-1, keepdims=True)
        logp = logits - peak - np.log(np.exp(logits - peak).sum(-1, keepdims=True))
        nll -= float(logp[np.arange(len(ids) - 1), ids[1:]].sum())
        count += len(ids) - 1
    return float(np.exp(nll / count))


@pytest.mark.slow
def test_smollm2_int8_activations_stay_within_the_perplexity_tolerance(
    smollm2: Any, smollm2_path: Any, tmp_path: Path
) -> None:
    """``backend_options={"accuracy_level": 4}``: the same blocks with int8 activations in every
    ``MatMulNBits``; perplexity on 8 x 256 tokens of held-out text within 2% of the float32 model's
    (+1.09% measured, against llama.cpp's +0.63% on the same file: the issue's bar is llama.cpp's
    + 0.5%), and not equal to it (the option took effect). Perplexity is deterministic for a given
    ONNX Runtime build and CPU; the margin covers another CPU's int8 kernel.
    """
    import onnx
    from aikit_onnxruntime.gguf.candidates import propose_gguf_candidates

    import aikit
    from aikit.errors import ConfigError

    int8 = aikit.Model.load(smollm2_path, backend_options={"accuracy_level": 4})
    assert int8.transformations[-1]["strategy"] == "ort-gguf-native"
    assert int8.transformations[-1]["accuracy_level"] == 4
    backend: Any = int8.backend
    graph = onnx.load(str(backend.graph_path()), load_external_data=False).graph
    levels = {a.i for n in graph.node if n.op_type == "MatMulNBits" for a in n.attribute if a.name == "accuracy_level"}
    assert levels == {4}
    texts = _held_out(smollm2.parts.tokenizer)
    ratio = _perplexity(int8, texts) / _perplexity(smollm2, texts)
    assert abs(ratio - 1) > 1e-4 and ratio - 1 <= 0.02, ratio

    # optimize offers only the form it does not run yet
    proposed: list[Any] = []
    propose_gguf_candidates(int8, proposed.append)
    assert [c.strategies for c in proposed] == [("ort-gguf-native",)]

    # an artifact keeps its graph; asking it for another level raises instead of being ignored
    saved = int8.save(tmp_path / "smol-int8")
    assert aikit.Model.load(saved).transformations[-1]["accuracy_level"] == 4
    assert aikit.Model.load(saved, backend_options={"accuracy_level": 4}).transformations[-1]["accuracy_level"] == 4
    with pytest.raises(ConfigError, match="runs the graph it was saved with"):
        aikit.Model.load(saved, backend_options={"accuracy_level": 0})


@pytest.mark.slow
def test_the_quality_guard_judges_int8_activations_against_the_float32_model(smollm2: Any, smollm2_path: Any) -> None:
    """``compress`` / ``optimize`` bound the int8 form by perplexity against the model as loaded, and
    ``Model.load(gguf)``'s default graph scores as the float32 torch model does, so the bound is
    against float32."""
    import aikit
    import aikit.measure.quality as ev
    from aikit.sample_text import load_sentences

    default = aikit.Model.load(smollm2_path)
    sentences = load_sentences(16, seed=5)
    guarded = default.compress(
        "ort-gguf-native:accuracy_level=4", calibration=sentences, max_quality_drop=0.05, measure_speed=False
    )
    report = guarded.compression_report
    assert report.quality_metric == "perplexity_after / perplexity_before - 1"
    data = ev.prepare_data(default.task, sentences)
    float32 = ev.summarise(smollm2.task, smollm2.backend, data.eval)
    _, _, default_drop = ev.measure_quality(float32, ev.summarise(default.task, default.backend, data.eval))
    assert abs(default_drop) < 1e-5
    _, _, int8_drop = ev.measure_quality(float32, ev.summarise(guarded.task, guarded.backend, data.eval))
    assert abs(report.quality_drop - int8_drop) < 1e-5
    assert abs(report.quality_drop) > 1e-5  # int8 activations do move the perplexity


# ------------------------------------------------------------------ a tiny Llama in the 2-, 3-, 5- and 6-bit types
# Layer by layer, every 5- and 6-bit type on every kind of projection (q/k/v fused by the export, o,
# gate/up, down), the head in Q6_K and the token table in Q4_K; SmolLM2's tokenizer so that transformers
# reads the file.
_MIXED = (
    {"attn_q": "Q5_0", "attn_k": "Q5_0", "attn_v": "Q5_0", "attn_output": "Q5_1", "ffn_gate": "Q5_K", "ffn_up": "Q5_K", "ffn_down": "Q6_K"},
    {"attn_q": "Q6_K", "attn_k": "Q6_K", "attn_v": "Q6_K", "attn_output": "Q5_K", "ffn_gate": "Q5_1", "ffn_up": "Q5_1", "ffn_down": "Q5_0"},
    {"attn_q": "Q3_K", "attn_k": "Q3_K", "attn_v": "Q3_K", "attn_output": "Q2_K", "ffn_gate": "Q2_K", "ffn_up": "Q2_K", "ffn_down": "Q3_K"},
)  # fmt: skip
_HIDDEN, _FFN, _HEADS, _KV_HEADS = 256, 512, 4, 2


def _tiny_gguf(
    path: Path,
    smollm2_path: Any,
    *,
    arch: str = "llama",
    layers: tuple[dict[str, str], ...] = _MIXED,
    table: str = "Q4_K",
    head: str | None = "Q6_K",
    qkv_bias: bool = False,
    qk_norm: bool = False,
    heads: tuple[int, int] = (_HEADS, _KV_HEADS),
) -> Path:
    """A tiny ``arch`` model with ``layers`` (projection -> GGUF type), the token table in ``table``, the
    head in ``head`` (``None``: tied to the table), q/k/v biases when ``qkv_bias`` (Qwen2), per-head
    q/k norms when ``qk_norm`` (Qwen3), ``heads`` = (attention heads, key/value heads)."""
    source = gguf.GGUFReader(str(smollm2_path))

    def field(name: str) -> Any:
        return source.fields[name].contents()

    rng = np.random.default_rng(17)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(len(layers))
    writer.add_context_length(256)
    writer.add_embedding_length(_HIDDEN)
    writer.add_feed_forward_length(_FFN)
    writer.add_head_count(heads[0])
    writer.add_head_count_kv(heads[1])
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    head_dim = _HIDDEN // heads[0]
    writer.add_rope_dimension_count(head_dim)
    writer.add_tokenizer_model(field("tokenizer.ggml.model"))
    writer.add_tokenizer_pre(field("tokenizer.ggml.pre"))
    writer.add_token_list(field("tokenizer.ggml.tokens"))
    writer.add_token_types(field("tokenizer.ggml.token_type"))
    writer.add_token_merges(field("tokenizer.ggml.merges"))
    writer.add_bos_token_id(field("tokenizer.ggml.bos_token_id"))
    writer.add_eos_token_id(field("tokenizer.ggml.eos_token_id"))
    writer.add_pad_token_id(field("tokenizer.ggml.padding_token_id"))
    writer.add_add_bos_token(False)
    writer.add_chat_template(field("tokenizer.chat_template"))
    vocab = len(field("tokenizer.ggml.tokens"))
    ones = np.ones(_HIDDEN, dtype=np.float32)
    # the default: an untied model, the token table in Q4_K (looked up from its codes, scales and offsets),
    # the head in Q6_K
    for name, kind in (("token_embd.weight", table), ("output.weight", head)):
        if kind is not None:
            blocks = _random_blocks(kind, vocab, _HIDDEN, rng)
            writer.add_tensor(name, blocks, raw_dtype=getattr(gguf.GGMLQuantizationType, kind))

    writer.add_tensor("output_norm.weight", ones)
    shapes = {
        "attn_q": (_HIDDEN, _HIDDEN),
        "attn_k": (head_dim * heads[1], _HIDDEN),
        "attn_v": (head_dim * heads[1], _HIDDEN),
        "attn_output": (_HIDDEN, _HIDDEN),
        "ffn_gate": (_FFN, _HIDDEN),
        "ffn_up": (_FFN, _HIDDEN),
        "ffn_down": (_HIDDEN, _FFN),
    }
    for i, kinds in enumerate(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", ones)
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", ones)
        if qk_norm:  # weights away from 1, so that a norm left out would show
            for name in ("attn_q_norm", "attn_k_norm"):
                writer.add_tensor(
                    f"blk.{i}.{name}.weight", (1 + 0.2 * rng.standard_normal(head_dim)).astype(np.float32)
                )
        for name, kind in kinds.items():
            rows, cols = shapes[name]
            data = _random_blocks(kind, rows, cols, rng)
            writer.add_tensor(f"blk.{i}.{name}.weight", data, raw_dtype=getattr(gguf.GGMLQuantizationType, kind))
            if qkv_bias and name in ("attn_q", "attn_k", "attn_v"):
                writer.add_tensor(f"blk.{i}.{name}.bias", (rng.standard_normal(rows) * 0.1).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.slow
def test_a_file_in_2_to_6_bit_k_and_5_bit_types_runs_its_own_blocks_and_matches_the_float32_model(
    tmp_path: Path, smollm2_path: Any
) -> None:
    """``Model.load`` of a GGUF in ``Q5_0`` / ``Q5_1`` / ``Q5_K`` / ``Q6_K`` / ``Q2_K`` / ``Q3_K`` maps every MatMul onto its blocks
    (none left float32) and computes the de-quantized float32 model: prompt logits within 2e-3 of
    torch's and the same greedy tokens."""
    import onnx
    import torch

    import aikit

    path = _tiny_gguf(tmp_path / "tiny-mixed.gguf", smollm2_path)
    native = aikit.Model.load(path)
    assert native.backend_name == "onnxruntime"
    reports = json.loads((Path(native.backend.folder) / "gguf_native.json").read_text())  # type: ignore[attr-defined]
    for graph, report in reports.items():  # per graph: the exported one and the decoding one
        assert sorted(set(report["mapped"].values())) == ["Q2_K", "Q3_K", "Q5_0", "Q5_1", "Q5_K", "Q6_K"], graph
        assert report["kept"] == {} and report["float_bytes"] == 0, graph
        assert list(report["mapped"].values()).count("Q6_K") >= 3, graph  # two layers' + the head
        assert list(report["gathers"].values()) == ["Q4_K"], graph  # the token lookup reads the blocks too
    reference = aikit.Model.load(path, backend="torch")
    for prompt in PROMPTS:
        ids = np.array([reference.parts.tokenizer(prompt)["input_ids"]], dtype=np.int64)
        with torch.inference_mode():
            want = reference.backend.torch_module()(input_ids=torch.from_numpy(ids)).logits.float().numpy()  # type: ignore[attr-defined]
        got = native.backend.decoder.logits(ids, np.ones_like(ids))  # type: ignore[attr-defined]
        assert float(np.abs(want).max()) > 0.1  # the network is not dead
        assert float(np.abs(got - want).max()) < 2e-3, prompt
        assert _greedy(native, prompt, 16) == _greedy(reference, prompt, 16), prompt
    # int8 activations: every matrix one 8-bit operator on the int8 path (block 16 for Q6_K, 32 for the
    # rest); the logits move by the activations' rounding only (about 10% of their range measured),
    # where a wrong zero point or code would move them by more than the range itself.
    int8 = aikit.Model.load(path, backend_options={"accuracy_level": 4})
    graph = onnx.load(str(Path(int8.backend.folder) / "model.onnx"), load_external_data=False)  # type: ignore[attr-defined]
    nbits = [{a.name: a.i for a in n.attribute} for n in graph.graph.node if n.op_type == "MatMulNBits"]
    # (Q2_K / Q3_K stay one 4-bit operator at block 16)
    assert {(a["bits"], a["block_size"], a["accuracy_level"]) for a in nbits} == {(8, 16, 4), (8, 32, 4), (4, 16, 4)}
    for prompt in PROMPTS:
        ids = np.array([reference.parts.tokenizer(prompt)["input_ids"]], dtype=np.int64)
        with torch.inference_mode():
            want = reference.backend.torch_module()(input_ids=torch.from_numpy(ids)).logits.float().numpy()  # type: ignore[attr-defined]
        got = int8.backend.decoder.logits(ids, np.ones_like(ids))  # type: ignore[attr-defined]
        assert float(np.abs(got - want).max()) < 0.25 * float(want.max() - want.min()), prompt


@pytest.mark.parametrize("kind", ["Q6_K", "Q5_0", "Q4_1", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K"])
def test_embedding_tables_are_looked_up_in_their_blocks(kind: str, tmp_path: Path) -> None:
    """A token table (``Gather`` on axis 0) in any mapped type reads its blocks: ``GatherBlockQuantized``
    over the 8-bit form of ``Q6_K`` / ``Q5_0`` (zero points 32 / 16), and for the types it cannot hold (a
    float offset, ``Q3_K``'s zero point) a lookup of codes, scales and offsets in standard operators. The
    looked-up rows are ``dequantize``'s, bit for bit, and the float32 table is gone."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rows = _k_quant_rows(kind, 12) if kind.endswith("_K") else _blocks(kind, 12, n=N)
    table = _dequant(kind, rows)
    _write_gguf(tmp_path / "t.gguf", {"table": (kind, rows)})
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["embedded"], name="/embed/Gather", axis=0)],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info("embedded", TensorProto.FLOAT, ["b", "s", table.shape[1]])],
        [numpy_helper.from_array(table, "table")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "src.onnx"))
    report = gguf_native_graph(
        tmp_path / "src.onnx", tmp_path / "dst.onnx", GgufIndex(tmp_path / "t.gguf"), accuracy_level=0, types=(kind,)
    )
    assert report.gathers == {"/embed/Gather": kind}
    rewritten = onnx.load(str(tmp_path / "dst.onnx"))
    assert "table" not in {t.name for t in rewritten.graph.initializer}
    fused = "GatherBlockQuantized" in {n.op_type for n in rewritten.graph.node}
    assert fused == (kind in ("Q6_K", "Q5_0"))
    codes = [t for t in rewritten.graph.initializer if t.name.endswith(".gguf_codes")]
    if not fused:  # 4-bit codes stay two per byte, the 5-bit ones take a byte each
        assert [list(t.dims) for t in codes] == [
            [N, table.shape[1] // (2 if kind in ("Q4_1", "Q4_K", "Q2_K", "Q3_K") else 1)]
        ]
    ids = np.array([[0, 5, N - 1, 5], [1, 2, 3, 4]], dtype=np.int64)
    (got,) = _session(rewritten).run(None, {"ids": ids})
    np.testing.assert_array_equal(got, table[ids])


def _requantized_smollm2(path: Path, smollm2_path: Any, kind: str) -> Path:
    """The packaged SmolLM2 with its ``Q4_1`` matrices re-quantized to ``kind`` from their values (gguf-py's
    own quantizer), every other tensor and all metadata copied: a real model in that type."""
    source = gguf.GGUFReader(str(smollm2_path))
    writer = gguf.GGUFWriter(str(path), "llama")
    for key, f in source.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        sub = f.types[1] if f.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, f.contents(), f.types[0], sub_type=sub)
    target = getattr(gguf.GGMLQuantizationType, kind)
    for t in source.tensors:
        if t.tensor_type.name == "Q4_1":
            values = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
            writer.add_tensor(t.name, gguf.quants.quantize(values, target), raw_dtype=target)
        elif t.tensor_type.name in ("F32", "F16"):
            writer.add_tensor(t.name, np.asarray(t.data))
        else:
            writer.add_tensor(t.name, np.asarray(t.data), raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.slow
def test_smollm2_in_q5_1_gives_the_float32_models_greedy_tokens(tmp_path: Path, smollm2_path: Any) -> None:
    """Real weights in a 5-bit type: ``Model.load`` maps every body matrix (``Q5_1``, two 4-bit halves plus
    the offsets) and the ``Q8_0`` head, and greedy decoding gives the de-quantized float32 model's tokens."""
    import aikit

    path = _requantized_smollm2(tmp_path / "smollm2-q5_1.gguf", smollm2_path, "Q5_1")
    native = aikit.Model.load(path)
    reports = json.loads((Path(native.backend.folder) / "gguf_native.json").read_text())  # type: ignore[attr-defined]
    for graph, report in reports.items():
        assert sorted(set(report["mapped"].values())) == ["Q5_1", "Q8_0"] and report["kept"] == {}, graph
    reference = aikit.Model.load(path, backend="torch")
    for prompt in PROMPTS:
        assert _greedy(native, prompt) == _greedy(reference, prompt), prompt


_PLAIN = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["qwen2", "qwen3"])
def test_qwen_files_run_their_own_blocks(arch: str, tmp_path: Path, smollm2_path: Any) -> None:
    """Qwen2 (the Qwen2.5 GGUFs: q/k/v biases) and Qwen3 (per-head q/k norms; transformers reads no
    head size from the file, so it is Qwen3's 128), a tied ``Q8_0`` table, layers in ``Q4_K`` and
    ``Q4_1``. Every MatMul maps, the table is gathered from its blocks, and the graph computes the
    float32 model: prompt logits within 2e-3 of torch's and the same greedy tokens."""
    import torch

    import aikit

    layers = ({name: "Q4_K" for name in _PLAIN}, {name: "Q4_1" for name in _PLAIN})
    path = _tiny_gguf(
        tmp_path / f"tiny-{arch}.gguf",
        smollm2_path,
        arch=arch,
        layers=layers,
        table="Q8_0",
        head=None,
        qkv_bias=arch == "qwen2",
        qk_norm=arch == "qwen3",
        heads=(2, 1) if arch == "qwen3" else (_HEADS, _KV_HEADS),
    )
    native = aikit.Model.load(path)
    assert native.backend_name == "onnxruntime"
    reports = json.loads((Path(native.backend.folder) / "gguf_native.json").read_text())  # type: ignore[attr-defined]
    for graph, report in reports.items():
        assert sorted(set(report["mapped"].values())) == ["Q4_1", "Q4_K", "Q8_0"], graph  # Q8_0: the tied head
        assert report["kept"] == {} and report["float_bytes"] == 0, graph
        assert list(report["gathers"].values()) == ["Q8_0"], graph
    reference = aikit.Model.load(path, backend="torch")
    own = "q_proj.bias" if arch == "qwen2" else "q_norm.weight"
    names = [n for n, _ in reference.backend.torch_module().named_parameters() if n.endswith(own)]  # type: ignore[attr-defined]
    assert len(names) == len(layers)  # transformers read the biases / norms: a Qwen model, not a Llama
    for prompt in PROMPTS:
        ids = np.array([reference.parts.tokenizer(prompt)["input_ids"]], dtype=np.int64)
        with torch.inference_mode():
            want = reference.backend.torch_module()(input_ids=torch.from_numpy(ids)).logits.float().numpy()  # type: ignore[attr-defined]
        got = native.backend.decoder.logits(ids, np.ones_like(ids))  # type: ignore[attr-defined]
        assert float(np.abs(want).max()) > 0.1
        assert float(np.abs(got - want).max()) < 2e-3, prompt
        assert _greedy(native, prompt, 16) == _greedy(reference, prompt, 16), prompt
