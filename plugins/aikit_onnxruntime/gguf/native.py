"""Put a GGUF file's own quantized blocks back into the float32 ONNX graph exported from its de-quantized weights.

``Model.load("x.gguf")`` de-quantizes every tensor to float32 (transformers' GGUF reader, which uses
``gguf.quants.dequantize``) and the ONNX export then holds those float32 values, possibly
regrouped: onnxruntime-genai's builder concatenates q/k/v into one MatMul, and transformers
permutes the rows of Llama's q/k weights. Rows survive all of that intact, so each MatMul weight
is traced back to the file **by content**: every row of the transposed weight (one output
feature) is looked up among the de-quantized rows of the GGUF's mapped tensors, and the MatMul is
replaced by ``MatMulNBits`` holding those rows' blocks (:mod:`aikit_onnxruntime.gguf.blocks`) only when

- every row was found, all in tensors of one GGUF type, and
- the blocks found de-quantize to exactly the float32 weight in the graph (checked, not assumed).

Anything else keeps its float32 MatMul and is reported with the reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from aikit_onnxruntime.compress.quantize import resolve_exclusions
from aikit_onnxruntime.gguf.blocks import BLOCK, HIGH_FACTOR, NATIVE_TYPES, PackedWeight, pack_rows

__all__ = ["GgufIndex", "NativeReport", "gguf_native_graph"]

logger = logging.getLogger("aikit.onnxruntime")


@dataclass
class NativeReport:
    """What :func:`gguf_native_graph` did: ``mapped`` MatMul -> GGUF type, ``kept`` MatMul -> reason,
    ``float_bytes`` (float32 weight bytes left in kept MatMuls) and ``gathers`` (embedding lookups
    now reading the blocks: Gather -> GGUF type)."""

    mapped: dict[str, str] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)
    float_bytes: int = 0
    gathers: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mapped": dict(self.mapped),
            "kept": dict(self.kept),
            "float_bytes": self.float_bytes,
            "gathers": dict(self.gathers),
        }

    def notes(self, name: str) -> list[str]:
        """One line per fact a compression report should show (types mapped, what stayed float32, its cost)."""
        types = Counter(self.mapped.values())
        lines = [
            f"{name}: {len(self.mapped)} MatMuls run the GGUF's own blocks ("
            + ", ".join(f"{n} {t}" for t, n in sorted(types.items()))
            + ")"
        ]
        if self.gathers:
            lines.append(
                f"{name}: {len(self.gathers)} embedding lookups read the GGUF's blocks (GatherBlockQuantized, "
                + ", ".join(sorted(set(self.gathers.values())))
                + ")"
            )
        if self.kept:
            reasons = Counter(self.kept.values())
            lines.append(
                f"{name}: {len(self.kept)} MatMuls kept in float32 ({self.float_bytes / 1e6:.1f} MB of weights): "
                + "; ".join(f"{n}x {r}" for r, n in reasons.most_common())
            )
        return lines


class GgufIndex:
    """Row fingerprints of a GGUF file's tensors of the mapped types, to trace float32 weights back to blocks.

    Fingerprints are Python hashes of each de-quantized row's bytes; a hit is only a candidate,
    confirmed by :meth:`rows_for` de-quantizing the gathered blocks and comparing them exactly.
    """

    def __init__(self, path: Path, *, types: Sequence[str] = tuple(NATIVE_TYPES)) -> None:
        from gguf import GGUFReader

        self.path = path
        self._reader = GGUFReader(str(path))
        self._tensors: list[Any] = []
        self._rows: dict[int, tuple[int, int]] = {}
        self.other_types: Counter[str] = Counter()
        for tensor in self._reader.tensors:
            kind = tensor.tensor_type.name
            if len(tensor.shape) != 2:
                continue
            if kind not in types:
                self.other_types[kind] += 1
                continue
            t = len(self._tensors)
            self._tensors.append(tensor)
            for r, row in enumerate(self._dequantize(t)):
                self._rows.setdefault(hash(row.tobytes()), (t, r))

    def _dequantize(self, t: int, rows: NDArray[np.intp] | None = None) -> NDArray[np.float32]:
        from gguf import dequantize

        tensor = self._tensors[t]
        data = tensor.data if rows is None else tensor.data[rows]
        return np.asarray(dequantize(data, tensor.tensor_type), dtype=np.float32)

    def rows_for(self, weight_t: NDArray[np.float32]) -> tuple[str, NDArray[np.uint8]] | str:
        """GGUF type and raw block rows (``[N, bytes]``) whose de-quantized values equal ``weight_t``
        (``[N, K]``, one row per output feature) exactly; otherwise the reason they were not found."""
        where = [self._rows.get(hash(row.tobytes())) for row in weight_t]
        if any(w is None for w in where):
            missing = sum(w is None for w in where)
            others = ", ".join(sorted(self.other_types)) or "none"
            return (
                f"weight not from a mapped GGUF tensor ({missing}/{len(where)} rows unmatched; "
                f"other GGUF types in the file: {others})"
            )
        hits = [w for w in where if w is not None]
        kinds = {self._tensors[t].tensor_type.name for t, _ in hits}
        if len(kinds) != 1:
            return f"rows from GGUF tensors of several types ({', '.join(sorted(kinds))})"
        raw_parts: list[NDArray[np.uint8]] = []
        deq_parts: list[NDArray[np.float32]] = []
        # consecutive rows of one tensor are gathered together (q/k/v concatenations are runs)
        start = 0
        while start < len(hits):
            t = hits[start][0]
            end = start
            while end < len(hits) and hits[end][0] == t:
                end += 1
            idx = np.array([r for _, r in hits[start:end]], dtype=np.intp)
            raw_parts.append(np.asarray(self._tensors[t].data[idx], dtype=np.uint8))
            deq_parts.append(self._dequantize(t, idx))
            start = end
        if not np.array_equal(np.concatenate(deq_parts), weight_t):
            return "GGUF blocks do not reproduce the graph's weight exactly"
        return next(iter(kinds)), np.concatenate(raw_parts)


# The one scalar initializer (``HIGH_FACTOR``) every two-4bit matrix's high half is multiplied by.
_HIGH_FACTOR = "gguf_high_factor"


def _nbits_nodes(
    node: Any, weight: PackedWeight, k: int, n: int, accuracy_level: int, block_sums: str | None
) -> tuple[list[Any], list[Any]]:
    """The nodes and initializers replacing MatMul ``node``: ``MatMulNBits``, plus a second ``MatMulNBits``
    for the high halves of the two-4bit forms (same scale tensor, its output times ``HIGH_FACTOR``: the
    graph's one ``_HIGH_FACTOR`` initializer, which the caller adds) and
    ``block_sums @ offsets`` for the types with an offset (``block_sums`` names ``x @ E``), added to its
    output in that order."""
    from onnx import helper, numpy_helper

    base, out = node.input[1], node.output[0]
    nodes: list[Any] = []
    inits: list[Any] = []
    terms: list[str] = []
    scales = f"{base}.gguf_scales"
    inits.append(numpy_helper.from_array(weight.scales, scales))
    for part, packed in (("", weight), ("_high", weight.high)):
        if packed is None:
            continue
        assert packed.scales is weight.scales, "the halves of a two-4bit form share their scales"
        tensors = [numpy_helper.from_array(packed.packed, f"{base}.gguf{part}_q")]
        inputs = [node.input[0], tensors[0].name, scales]
        if packed.zero_points is not None:
            tensors.append(numpy_helper.from_array(packed.zero_points, f"{base}.gguf{part}_zero_points"))
            inputs.append(tensors[-1].name)
        inits += tensors
        terms.append(f"{out}.gguf{part}")
        nodes.append(
            helper.make_node(
                "MatMulNBits",
                inputs,
                [terms[-1]],
                name=f"{node.name}_gguf{part}",
                domain="com.microsoft",
                K=k,
                N=n,
                bits=packed.bits,
                block_size=packed.block,
                accuracy_level=accuracy_level,
            )
        )
        if part:  # scaling a float32 sum by a power of two rounds exactly as scaling its scales would
            nodes.append(
                helper.make_node(
                    "Mul", [terms[-1], _HIGH_FACTOR], [f"{terms[-1]}_x16"], name=f"{node.name}_gguf_high_factor"
                )
            )
            terms[-1] = nodes[-1].output[0]
    if weight.offsets is not None:
        assert block_sums is not None  # x @ E, summing blocks of weight.block
        inits.append(numpy_helper.from_array(np.ascontiguousarray(weight.offsets.T), f"{base}.gguf_offsets"))
        nodes.append(
            helper.make_node("MatMul", [block_sums, inits[-1].name], [f"{out}.gguf_m"], name=f"{node.name}_gguf_m")
        )
        terms.append(f"{out}.gguf_m")
    if len(terms) == 1:
        nodes[0].output[0] = out
        return nodes, inits
    # (low + high) first, exact, then the offset once: the weight dequantize computes, on an identity input
    total = terms[0]
    for i, term in enumerate(terms[1:], 1):
        last = i == len(terms) - 1
        nodes.append(
            helper.make_node(
                "Add", [total, term], [out if last else f"{out}.gguf_sum{i}"], name=f"{node.name}_gguf_add{i}"
            )
        )
        total = nodes[-1].output[0]
    return nodes, inits


# GGUF types GatherBlockQuantized holds exactly (uint8 data and integer zero points): Q8_0 as q + 128
# with 8 bits, Q4_0 as its nibbles with 4 bits (both the default zero point 2^(bits-1)), and the 8-bit
# forms of Q5_0 and Q6_K (zero points 16 and 32; Q6_K at block 16). Types with a float offset (Q4_1,
# the K-quants with mins) have no place there.
_GATHER_TYPES = ("Q8_0", "Q4_0", "Q5_0", "Q6_K")


def _gather_node(node: Any, kind: str, raw: NDArray[np.uint8]) -> tuple[list[Any], list[Any]]:
    """``GatherBlockQuantized`` replacing Gather ``node`` over a table of ``_GATHER_TYPES`` (rows = tokens)."""
    from onnx import helper, numpy_helper

    weight = pack_rows(kind, raw, wide="8bit")
    base = node.input[0]
    data = numpy_helper.from_array(weight.packed.reshape(weight.n, -1), f"{base}.gguf_table")
    tensors = [data, numpy_helper.from_array(weight.scales, f"{base}.gguf_table_scales")]
    if weight.zero_points is not None:
        tensors.append(numpy_helper.from_array(weight.zero_points, f"{base}.gguf_table_zero_points"))
    inputs = [data.name, node.input[1], *(t.name for t in tensors[1:])]
    gather = helper.make_node(
        "GatherBlockQuantized",
        inputs,
        [node.output[0]],
        name=f"{node.name}_gguf",
        domain="com.microsoft",
        bits=weight.bits,
        block_size=weight.block,
        gather_axis=0,
        quantize_axis=1,
    )
    return [gather], tensors


def _lookup_nodes(node: Any, kind: str, raw: NDArray[np.uint8]) -> tuple[list[Any], list[Any]]:
    """Standard ONNX nodes replacing Gather ``node`` over a table of any mapped type that
    ``GatherBlockQuantized`` cannot hold (a float offset per block, or ``Q3_K``'s zero point 4 in 4 bits):
    the rows' codes, scales and offsets are gathered and combined as ``(code - zero) * scale + offset``,
    the float32 operations ``dequantize`` performs, so the rows are its values bit for bit. Only the
    looked-up rows are de-quantized. Codes of 4-bit forms stay two per byte (the 4-bit blob: element
    ``2j`` in the low nibble) and are split in float32 (``hi = floor(b / 16)``, ``lo = b - 16 hi``:
    exact for bytes), 8-bit ones one per byte."""
    from onnx import TensorProto, helper, numpy_helper

    weight = pack_rows(kind, raw, wide="8bit", centre=False)  # zero point 0 saves the lookup a Sub
    n, blocks, block = weight.n, weight.scales.shape[1], weight.block
    codes = weight.packed.reshape(n, -1)
    if weight.bits == 8:
        zero = 128 if weight.zero_points is None else int(weight.zero_points.flat[0])
        uniform = weight.zero_points is None or bool((weight.zero_points == zero).all())
    else:
        zero = 8 if weight.zero_points is None else int(weight.zero_points.flat[0] & 0x0F)
        uniform = weight.zero_points is None or bool((weight.zero_points == (zero | zero << 4)).all())
    assert uniform, f"{kind}: a lookup expects one zero point for the whole table"
    base, ids, name = node.input[0], node.input[1], node.name
    out = node.output[0]
    tensors = [
        numpy_helper.from_array(np.ascontiguousarray(codes), f"{base}.gguf_codes"),
        numpy_helper.from_array(weight.scales.reshape(n, blocks, 1), f"{base}.gguf_code_scales"),
        numpy_helper.from_array(np.array([blocks, block], dtype=np.int64), f"{base}.gguf_block_shape"),
        numpy_helper.from_array(np.array([blocks * block], dtype=np.int64), f"{base}.gguf_row_shape"),
    ]
    t = f"{out}.gguf"
    shape = f"{t}_ids_shape"
    nodes = [
        helper.make_node("Gather", [tensors[0].name, ids], [f"{t}_codes"], name=f"{name}_gguf_codes", axis=0),
        helper.make_node("Cast", [f"{t}_codes"], [f"{t}_float"], name=f"{name}_gguf_cast", to=TensorProto.FLOAT),
        helper.make_node("Shape", [ids], [shape], name=f"{name}_gguf_ids_shape"),
        helper.make_node("Concat", [shape, tensors[2].name], [f"{t}_bshape"], name=f"{name}_gguf_bshape", axis=0),
        helper.make_node("Concat", [shape, tensors[3].name], [f"{t}_oshape"], name=f"{name}_gguf_oshape", axis=0),
    ]
    codes_value = f"{t}_float"
    if weight.bits == 4:
        tensors += [
            numpy_helper.from_array(np.array(16, dtype=np.float32), f"{base}.gguf_nibble"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), f"{base}.gguf_last_axis"),
        ]
        nibble, last = tensors[-2].name, tensors[-1].name
        nodes += [
            helper.make_node("Div", [codes_value, nibble], [f"{t}_div"], name=f"{name}_gguf_div"),
            helper.make_node("Floor", [f"{t}_div"], [f"{t}_hi"], name=f"{name}_gguf_hi"),
            helper.make_node("Mul", [f"{t}_hi", nibble], [f"{t}_hi16"], name=f"{name}_gguf_hi16"),
            helper.make_node("Sub", [codes_value, f"{t}_hi16"], [f"{t}_lo"], name=f"{name}_gguf_lo"),
            helper.make_node("Unsqueeze", [f"{t}_lo", last], [f"{t}_lo1"], name=f"{name}_gguf_lo1"),
            helper.make_node("Unsqueeze", [f"{t}_hi", last], [f"{t}_hi1"], name=f"{name}_gguf_hi1"),
            helper.make_node("Concat", [f"{t}_lo1", f"{t}_hi1"], [f"{t}_pairs"], name=f"{name}_gguf_pairs", axis=-1),
        ]
        codes_value = f"{t}_pairs"
    nodes.append(
        helper.make_node("Reshape", [codes_value, f"{t}_bshape"], [f"{t}_blocked"], name=f"{name}_gguf_blocked")
    )
    value = f"{t}_blocked"
    if zero:
        tensors.append(numpy_helper.from_array(np.array(zero, dtype=np.float32), f"{base}.gguf_code_zero"))
        nodes.append(helper.make_node("Sub", [value, tensors[-1].name], [f"{t}_centred"], name=f"{name}_gguf_zero"))
        value = f"{t}_centred"
    nodes += [
        helper.make_node("Gather", [tensors[1].name, ids], [f"{t}_scales"], name=f"{name}_gguf_scales", axis=0),
        helper.make_node("Mul", [value, f"{t}_scales"], [f"{t}_scaled"], name=f"{name}_gguf_scale"),
    ]
    value = f"{t}_scaled"
    if weight.offsets is not None:
        tensors.append(numpy_helper.from_array(weight.offsets.reshape(n, blocks, 1), f"{base}.gguf_code_offsets"))
        nodes += [
            helper.make_node("Gather", [tensors[-1].name, ids], [f"{t}_offsets"], name=f"{name}_gguf_offsets", axis=0),
            helper.make_node("Add", [value, f"{t}_offsets"], [f"{t}_shifted"], name=f"{name}_gguf_offset"),
        ]
        value = f"{t}_shifted"
    nodes.append(helper.make_node("Reshape", [value, f"{t}_oshape"], [out], name=f"{name}_gguf_rows"))
    return nodes, tensors


def gguf_native_graph(
    src: Path,
    dst: Path,
    index: GgufIndex,
    *,
    accuracy_level: int,
    types: Sequence[str],
    exclude: Sequence[str] = (),
    progress: Any = None,
) -> NativeReport:
    """Write ``src`` to ``dst`` with every traceable MatMul weight as the GGUF's own blocks (see the module doc).

    ``types``: GGUF types to map (a subset of ``NATIVE_TYPES``); ``Q8_0`` takes the ``"8bit"`` form
    at ``accuracy_level=4`` (ONNX Runtime's fast int8 path) and ``"two-4bit"`` otherwise.
    ``exclude``: node names / fnmatch patterns kept in float32; ``progress(done, total)`` is called
    per MatMul. Row-gathers (``Gather`` on axis 0) of a table traced to ``Q8_0`` / ``Q4_0`` blocks
    (a tied embedding) become ``GatherBlockQuantized``, exact too, so the float32 table can go.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    uses = Counter(i for n in graph.node for i in n.input)
    candidates = [
        n
        for n in graph.node
        if n.op_type == "MatMul"
        and n.name  # nodes are replaced by name
        and len(n.input) == 2
        and n.input[1] in inits
        and inits[n.input[1]].data_type == onnx.TensorProto.FLOAT
        and len(inits[n.input[1]].dims) == 2
    ]
    excluded = set(resolve_exclusions([n.name for n in candidates], exclude))
    report = NativeReport()
    new_nodes: dict[str, tuple[list[Any], list[Any], str]] = {}  # node -> nodes, initializers, weight read
    eyes: dict[tuple[int, int], str] = {}
    sums: dict[tuple[str, int, int], str] = {}
    for i, node in enumerate(candidates):
        tensor = inits[node.input[1]]
        k, n = (int(d) for d in tensor.dims)
        reason: str | None = None
        if node.name in excluded:
            reason = "excluded"
        elif k % BLOCK:
            reason = f"K={k} is not a multiple of {BLOCK}"
        found: tuple[str, NDArray[np.uint8]] | str = reason or ""
        if reason is None:
            found = index.rows_for(np.ascontiguousarray(numpy_helper.to_array(tensor).T))
            if isinstance(found, tuple) and found[0] not in types:
                found = f"GGUF {found[0]} not mapped (types asked for: {', '.join(types)})"
        if isinstance(found, str):
            report.kept[node.name] = found
            report.float_bytes += k * n * 4
        else:
            kind, raw = found
            weight = pack_rows(kind, raw, wide="8bit" if accuracy_level == 4 else "two-4bit")
            block_sums = None
            prefix: list[Any] = []
            if weight.offsets is not None:
                x, size = node.input[0], weight.block
                if (k, size) not in eyes:  # E [K, K/block]: 1 where element k is in block j; x @ E sums each block
                    eyes[k, size] = f"gguf_block_indicator_{k}" + ("" if size == BLOCK else f"_by_{size}")
                    eye = np.repeat(np.eye(k // size, dtype=np.float32), size, axis=0)
                    graph.initializer.append(numpy_helper.from_array(eye, eyes[k, size]))
                if (x, k, size) not in sums:  # one x @ E per input: q/k/v, gate and up read the same x
                    suffix = "" if size == BLOCK else f"_{size}"
                    sums[x, k, size] = f"{x}.gguf_block_sums{suffix}"
                    prefix.append(
                        onnx.helper.make_node(
                            "MatMul", [x, eyes[k, size]], [sums[x, k, size]], name=f"{node.name}_gguf_sums{suffix}"
                        )
                    )
                block_sums = sums[x, k, size]
            nodes, tensors = _nbits_nodes(node, weight, k, n, accuracy_level, block_sums)
            # the block sums go before the first consumer in graph (topological) order
            new_nodes[node.name] = (prefix + nodes, tensors, node.input[1])
            report.mapped[node.name] = kind
        if progress is not None:
            progress(i + 1, len(candidates))
    producers = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if node.op_type != "Gather" or axis != 0 or not node.name or node.name in excluded:
            continue
        # the table is an initializer, or (onnxruntime-genai's tied embedding) Transpose(lm_head weight)
        source, transpose = node.input[0], None
        before = producers.get(source)
        if (
            source not in inits
            and before is not None
            and before.op_type == "Transpose"
            and before.name
            and uses[source] == 1
        ):
            perm = next((list(a.ints) for a in before.attribute if a.name == "perm"), [1, 0])
            if perm == [1, 0] and before.input[0] in inits:
                source, transpose = before.input[0], before
        if source not in inits:
            continue
        table = inits[source]
        if table.data_type != onnx.TensorProto.FLOAT or len(table.dims) != 2:
            continue
        values = numpy_helper.to_array(table)
        values = np.ascontiguousarray(values.T) if transpose is not None else values
        if values.shape[1] % BLOCK:
            continue
        found = index.rows_for(values)
        if isinstance(found, tuple) and found[0] in types:
            gather = _gather_node if found[0] in _GATHER_TYPES else _lookup_nodes
            nodes, tensors = gather(node, *found)
            if transpose is not None:  # the Transpose goes, and with it its read of the weight
                new_nodes[transpose.name] = ([], [], source)
                new_nodes[node.name] = (nodes, tensors, "")
            else:
                new_nodes[node.name] = (nodes, tensors, source)
            report.gathers[node.name] = found[0]
    rebuilt: list[Any] = []
    dropped: Counter[str] = Counter()
    for node in graph.node:
        if node.name in new_nodes:
            nodes, tensors, weight_name = new_nodes[node.name]
            rebuilt += nodes
            graph.initializer.extend(tensors)
            dropped[weight_name] += 1
        else:
            rebuilt.append(node)
    del graph.node[:]
    graph.node.extend(rebuilt)
    # a float32 weight still read by a node left as it was stays; others go
    keep = [t for t in graph.initializer if not (t.name in dropped and dropped[t.name] >= uses[t.name])]
    if any(_HIGH_FACTOR in n.input for n in graph.node):
        keep.append(numpy_helper.from_array(np.array(HIGH_FACTOR, dtype=np.float32), _HIGH_FACTOR))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    for leftover in dst.parent.glob(f"{dst.name}*"):
        leftover.unlink()
    onnx.save(model, str(dst), save_as_external_data=True, all_tensors_to_one_file=True, location=f"{dst.name}.data")
    return report
