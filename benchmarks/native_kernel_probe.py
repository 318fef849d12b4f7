"""How much a native kernel for GGUF ``Q4_1`` blocks could gain over ONNX Runtime's kernels (a probe, not a product).

#17's batch-1 target needs the file's blocks multiplied faster than ONNX Runtime 1.32's ``MatMulNBits``
does it. This measures that headroom on the packaged SmolLM2's 210 body matrices (all ``Q4_1``, 66 MB):
one pass of every matrix times a vector, as one decode step does, in three engines:

- ``c-float32``: a 40-line AVX-512 kernel (C, compiled here with ``gcc -O3 -march=native -fopenmp``)
  on the blocks repacked once at load (codes contiguous, ``d`` and ``m`` as float32), float32 math:
  ``y = sum_b d * (q . x_b) + m * sum(x_b)``, the de-quantized weights' product up to summation order
  (checked against float64);
- ``ort-level0`` / ``ort-level4``: the same matrices in aikit's exact split form
  (:func:`aikit_onnxruntime.gguf.native.gguf_native_graph`: ``MatMulNBits`` + block sums ``@ m`` + ``Add``)
  at ``accuracy_level`` 0 (float32, the default) and 4 (int8 activations).

Each engine runs in its own child process (its threads would otherwise compete with the other
engine's spinning ones), the engines alternate for ``--rounds`` rounds, and each reports its best
of 15 passes after a warm-up. Needs gcc with AVX-512F and F16C (the run stops with a message
otherwise). Run it alone on a quiet machine (load average below 0.5); ``--json`` writes the
figures. Nothing here is used by aikit itself.

    python benchmarks/native_kernel_probe.py --rounds 3 --json /tmp/probe.json
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

KERNEL = r"""
#include <immintrin.h>
#include <stdint.h>
typedef struct { uint16_t d, m; uint8_t qs[16]; } block_q4_1;

/* GGUF rows [N][K/32] blocks -> codes [N][K/32][16] (GGUF's nibble order kept), d and m as float32 */
void repack(const block_q4_1 *w, long blocks, uint8_t *codes, float *d, float *m) {
    for (long i = 0; i < blocks; i++) {
        d[i] = _cvtsh_ss(w[i].d); m[i] = _cvtsh_ss(w[i].m);
        for (int j = 0; j < 16; j++) codes[16 * i + j] = w[i].qs[j];
    }
}

/* y[n] = sum_b d[n,b] * (q[n,b,:] . x_b) + m[n,b] * sum(x_b); element j of a block is the low nibble
   of byte j, element j + 16 its high nibble; four rows per pass share the loads of x */
static void gemv(const uint8_t *codes, const float *d, const float *m, int N, int K, const float *x, float *y,
                 int threads) {
    const int nb = K / 32;
    float S[256];
    for (int b = 0; b < nb; b++)
        S[b] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_loadu_ps(x + 32 * b), _mm512_loadu_ps(x + 32 * b + 16)));
    const __m512i low = _mm512_set1_epi32(0x0F);
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (int n = 0; n < N; n += 4) {
        int rows = N - n < 4 ? N - n : 4;
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int b = 0; b < nb; b++) {
            __m512 xlo = _mm512_loadu_ps(x + 32 * b), xhi = _mm512_loadu_ps(x + 32 * b + 16);
            for (int r = 0; r < rows; r++) {
                long i = (long)(n + r) * nb + b;
                __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(codes + 16 * i)));
                __m512 t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(q, 4)), xhi,
                                           _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(q, low)), xlo));
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(d[i]), t, acc[r]);
            }
        }
        for (int r = 0; r < rows; r++) {
            const float *mr = m + (long)(n + r) * nb;
            float offset = 0;
            for (int b = 0; b < nb; b++) offset += mr[b] * S[b];
            y[n + r] = _mm512_reduce_add_ps(acc[r]) + offset;
        }
    }
}

void gemv_all(int count, const uint8_t **c, const float **d, const float **m, const int *N, const int *K,
              const float **x, float **y, int threads) {
    for (int i = 0; i < count; i++) gemv(c[i], d[i], m[i], N[i], K[i], x[i], y[i], threads);
}
"""

_PROJECTIONS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
ENGINES = ("c-float32", "ort-level0", "ort-level4")


def _matrices(gguf_path: Path) -> list[tuple[str, np.ndarray, int, int]]:
    """(name, raw GGUF rows, N, K) of every ``Q4_1`` body matrix."""
    import gguf

    tensors = {t.name: t for t in gguf.GGUFReader(str(gguf_path)).tensors}
    found = []
    for layer in range(10_000):
        if f"blk.{layer}.attn_q.weight" not in tensors:
            break
        for name in _PROJECTIONS:
            tensor = tensors[f"blk.{layer}.{name}.weight"]
            if tensor.tensor_type.name != "Q4_1":
                raise SystemExit(f"{tensor.name} is {tensor.tensor_type.name}: this probe reads Q4_1 only")
            raw = np.ascontiguousarray(np.asarray(tensor.data, dtype=np.uint8))
            found.append((tensor.name, raw, raw.shape[0], raw.shape[1] // 20 * 32))
    return found


def _inputs(matrices: list[tuple[str, np.ndarray, int, int]]) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(0)
    return {k: rng.standard_normal(k).astype(np.float32) for k in sorted({m[3] for m in matrices})}


def _c_engine(lib_path: Path, matrices: list[Any], xs: dict[int, np.ndarray], threads: int) -> Any:
    lib = ctypes.CDLL(str(lib_path))
    p = ctypes.c_void_p
    packs = []
    for _, raw, n, k in matrices:
        codes = np.empty((n, k // 32, 16), np.uint8)
        d, m = np.empty((n, k // 32), np.float32), np.empty((n, k // 32), np.float32)
        lib.repack(
            p(raw.ctypes.data), ctypes.c_long(n * (k // 32)), p(codes.ctypes.data), p(d.ctypes.data), p(m.ctypes.data)
        )
        packs.append((codes, d, m))
    count = len(matrices)
    outs = [np.zeros(m[2], dtype=np.float32) for m in matrices]
    args = (
        ctypes.c_int(count),
        (p * count)(*[c.ctypes.data for c, _, _ in packs]),
        (p * count)(*[d.ctypes.data for _, d, _ in packs]),
        (p * count)(*[m.ctypes.data for _, _, m in packs]),
        (ctypes.c_int * count)(*[m[2] for m in matrices]),
        (ctypes.c_int * count)(*[m[3] for m in matrices]),
        (p * count)(*[xs[m[3]].ctypes.data for m in matrices]),
        (p * count)(*[o.ctypes.data for o in outs]),
        ctypes.c_int(threads),
    )

    def run() -> list[Any]:
        lib.gemv_all(*args)
        return outs

    run.keep = packs  # type: ignore[attr-defined]  # the arrays the pointers point into
    return run


def _ort_engine(
    gguf_path: Path, folder: Path, matrices: list[Any], xs: dict[int, np.ndarray], level: int, threads: int
) -> Any:
    """aikit's exact split form of every matrix in one graph (built by the product's own rewrite)."""
    import gguf
    import onnx
    import onnxruntime as ort
    from aikit_onnxruntime.gguf.native import GgufIndex, gguf_native_graph
    from onnx import TensorProto, helper, numpy_helper

    src = folder / "float.onnx"
    if not src.exists():
        inits, nodes, outputs = [], [], []
        for name, raw, n, k in matrices:
            w = np.asarray(gguf.quants.dequantize(raw, gguf.GGMLQuantizationType.Q4_1), dtype=np.float32)
            inits.append(numpy_helper.from_array(np.ascontiguousarray(w.T), f"{name}.w"))
            nodes.append(helper.make_node("MatMul", [f"x{k}", f"{name}.w"], [f"{name}.y"], name=f"/{name}/MatMul"))
            outputs.append(helper.make_tensor_value_info(f"{name}.y", TensorProto.FLOAT, [1, n]))
        inputs = [helper.make_tensor_value_info(f"x{k}", TensorProto.FLOAT, [1, k]) for k in xs]
        graph = helper.make_graph(nodes, "body", inputs, outputs, inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.save(model, str(src), save_as_external_data=True, location="float.data")
    dst = folder / f"level{level}.onnx"
    if not dst.exists():  # built by the first round's child, reused by the later ones
        report = gguf_native_graph(src, dst, GgufIndex(gguf_path), accuracy_level=level, types=("Q4_1",))
        if len(report.mapped) != len(matrices):
            raise SystemExit(f"not every matrix mapped: {report.kept}")
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(dst), options, providers=["CPUExecutionProvider"])
    feed = {f"x{k}": x[None] for k, x in xs.items()}
    return lambda: [y[0] for y in session.run(None, feed)]


def child(engine: str, work: Path, gguf_path: Path, threads: int, passes: int) -> dict[str, Any]:
    """One engine in this process: warm-up, ``passes`` timed passes; best seconds and the outputs' check."""
    import gguf

    matrices = _matrices(gguf_path)
    xs = _inputs(matrices)
    if engine == "c-float32":
        run = _c_engine(work / "kernel.so", matrices, xs, threads)
    else:
        run = _ort_engine(gguf_path, work, matrices, xs, int(engine[-1]), threads)
    out = run()
    worst = 0.0  # largest error against the de-quantized weights' product in float64, relative to the row's scale
    for (_, raw, _, k), y in zip(matrices, out):
        w = np.asarray(gguf.quants.dequantize(raw, gguf.GGMLQuantizationType.Q4_1), dtype=np.float64)
        want = w @ xs[k].astype(np.float64)
        worst = max(worst, float(np.abs(np.asarray(y, np.float64) - want).max() / (np.abs(want).max() + 1e-30)))
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return {"engine": engine, "seconds": best, "max_rel_error": worst, "matrices": len(matrices)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    from aikit.defaults import default_model_path

    gguf_path = Path(default_model_path("smollm2"))
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), gguf_path, args.threads, 15)))
        return
    if shutil.which("gcc") is None:
        raise SystemExit("gcc not found: the probe compiles its kernel")
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " avx512f" not in flags or " f16c" not in flags:
        raise SystemExit("this CPU lacks AVX-512F or F16C: the probe's kernel needs both")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="aikit-probe-") as tmp:  # removed on exit, also on error / Ctrl-C
        work = Path(tmp)
        (work / "kernel.c").write_text(KERNEL)
        cmd = [
            "gcc",
            "-O3",
            "-march=native",
            "-fopenmp",
            "-shared",
            "-fPIC",
            str(work / "kernel.c"),
            "-o",
            str(work / "kernel.so"),
        ]
        subprocess.run(cmd, check=True)
        best: dict[str, float] = {}
        errors: dict[str, float] = {}
        count = 0
        for r in range(max(1, args.rounds)):
            for engine in ENGINES if r % 2 == 0 else tuple(reversed(ENGINES)):
                done = subprocess.run(
                    [sys.executable, __file__, "--child", engine, str(work), "--threads", str(args.threads)],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                row = json.loads(done.stdout.strip().splitlines()[-1])
                best[engine] = min(best.get(engine, float("inf")), row["seconds"])
                errors[engine] = row["max_rel_error"]
                count = row["matrices"]
    result = {
        "load_before": load,
        "threads": args.threads,
        "matrices": count,
        "ms": {e: best[e] * 1e3 for e in ENGINES},
        "max_rel_error": errors,
        "speedup_vs_ort_level0": best["ort-level0"] / best["c-float32"],
        "speedup_vs_ort_level4": best["ort-level4"] / best["c-float32"],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
