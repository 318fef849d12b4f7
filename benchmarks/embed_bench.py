"""Sentence embeddings: every aikit variant side by side with sentence-transformers fp32 ``encode``.

all-MiniLM-L6-v2 over N real sentences (``benchmarks/corpus.py``), in one process, 2 threads by
default. After a warm-up call of every variant, rounds interleave (each variant runs once per
round and chunk of sentences, so background load hits all alike); per chunk the best round
counts. Prints and (``--json``)
writes sentences/s, the ratio to sentence-transformers fp32 and the min / mean cosine of each
variant's embeddings against sentence-transformers' fp32 ones, with the machine's load average
(before and after), CPU model and flags and library versions.

sentence-transformers' own ONNX int8 backend (``backend="onnx"`` plus
``export_dynamic_quantized_onnx_model``) runs too when it works offline with the local model;
otherwise the reason is printed and recorded. Everything it writes goes to a temporary folder
that is removed on exit; it starts no processes.

Usage::

    python benchmarks/embed_bench.py [--n 1000 | --quick] [--rounds 2] [--threads 2] [--json out.json]
    python benchmarks/embed_bench.py --render out.json      # the docs' markdown table
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

ST = "sentence-transformers fp32 encode"
# The fastest mix found on MiniLM that kept min cosine >= 0.99 and mean >= 0.998 (200 sentences):
# asymmetric rows for Q/K/V, symmetric rows (one pass cheaper) for the FFN, and ORT's per-tensor
# range for the attention output projection, whose input has no outlier tokens.
MIXED = "ort-int8-rows:symmetric=*intermediate*|*layer.?/output/dense*,per_tensor=*attention/output*"


def _variants(threads: int, batch_sizes: list[int]) -> Iterator[tuple[str, str, Any, dict[str, Any]]]:
    """(label, key, aikit model, embed kwargs) for each aikit variant, built lazily."""
    import aikit
    from aikit.defaults import default_model_path

    path = default_model_path("minilm")
    torch_model = aikit.Model.load(path, task="feature-extraction", threads=threads)
    yield "aikit torch fp32", "torch", torch_model, {"batch_size": 32}
    # bf16 weights: on CPUs with AMX / AVX512-BF16 the fastest variant optimize found for MiniLM.
    yield "aikit torch `bf16`", "torch_bf16", torch_model.compress("bf16", measure_speed=False), {"batch_size": 32}
    plain = torch_model.to("onnxruntime", threads=threads, backend_options={"fusions": False})
    fused = torch_model.to("onnxruntime", threads=threads)
    yield "aikit ORT fp32", "ort", plain, {"batch_size": 32}
    small = min(batch_sizes)
    if small != 32:
        yield f"aikit ORT fp32, batch {small}", f"ort_b{small}", plain, {"batch_size": small}
    yield "aikit ORT fp32 + BERT fusions", "ort_fused", fused, {"batch_size": 32}
    dyn = plain.compress("ort-int8-dynamic", measure_speed=False)
    yield "aikit ORT `ort-int8-dynamic` (all layers, one range per tensor)", "dyn", dyn, {"batch_size": 32}
    rows = plain.compress("ort-int8-rows", measure_speed=False)
    for bs in batch_sizes:
        yield f"aikit ORT `ort-int8-rows`, batch {bs}", f"rows_b{bs}", rows, {"batch_size": bs}
    mixed = plain.compress(MIXED, measure_speed=False)
    yield "aikit ORT `ort-int8-rows`, mixed (see below)", "rows_mixed", mixed, {"batch_size": 32}
    if small != 32:
        yield f"aikit ORT `ort-int8-rows`, mixed, batch {small}", f"rows_mixed_b{small}", mixed, {"batch_size": small}
    tensor = plain.compress("ort-int8-rows:per_tensor=*", measure_speed=False)
    yield (
        "aikit ORT `ort-int8-rows:per_tensor=*` (one range per tensor, bias folded)",
        "rows_tensor",
        tensor,
        {"batch_size": 32},
    )
    rows_fused = fused.compress("ort-int8-rows", measure_speed=False)
    yield "aikit ORT `ort-int8-rows` on the fused graph", "rows_fused", rows_fused, {"batch_size": 32}


def _st_onnx_int8(src: Path, tmp: Path) -> tuple[Any | None, str]:
    """sentence-transformers' ONNX backend with its dynamic int8 export, or (None, why not)."""
    try:
        from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

        folder = tmp / "st-onnx"
        shutil.copytree(src, folder)
        model = SentenceTransformer(str(folder), backend="onnx", device="cpu")
        export_dynamic_quantized_onnx_model(model, "avx512_vnni", str(folder))
        options = {"file_name": "onnx/model_qint8_avx512_vnni.onnx", "provider": "CPUExecutionProvider"}
        int8 = SentenceTransformer(str(folder), backend="onnx", device="cpu", model_kwargs=options)
        return int8, ""
    except Exception as exc:  # any failure: the comparison is optional, the reason is reported
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


def _embedder(model: Any, kwargs: dict[str, Any]) -> Callable[[list[str]], np.ndarray]:
    def run(texts: list[str]) -> np.ndarray:
        return np.asarray(model.embed(texts, **kwargs))

    return run


def _cosines(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    return np.asarray((ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)))


def bench(n: int, rounds: int, threads: int, batch_sizes: list[int], chunks: int) -> dict[str, Any]:
    import torch
    from corpus import load_sentences
    from sentence_transformers import SentenceTransformer

    from aikit.defaults import default_model_path

    torch.set_num_threads(threads)
    sentences = load_sentences(n)
    src = default_model_path("minilm")
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="aikit-embed-bench-") as tmp:
        st = SentenceTransformer(str(src), device="cpu")
        runners: dict[str, Callable[[list[str]], np.ndarray]] = {ST: lambda xs: st.encode(xs, batch_size=32)}
        small = min(batch_sizes)
        if small != 32:  # the same smaller batches for sentence-transformers, for a like-for-like ratio
            runners[f"sentence-transformers fp32 encode, batch {small}"] = lambda xs: st.encode(xs, batch_size=small)
        # What a sentence-transformers user would try first for speed on a bfloat16 CPU (AMX / AVX512-BF16).
        st_bf16 = SentenceTransformer(str(src), device="cpu", model_kwargs={"dtype": torch.bfloat16})
        runners["sentence-transformers bf16 encode"] = lambda xs: st_bf16.encode(xs, batch_size=32)
        st_int8, why = _st_onnx_int8(Path(src), Path(tmp))
        if st_int8 is None:
            notes.append(f"sentence-transformers ONNX int8 skipped: {why}")
            print(notes[-1], flush=True)
        else:
            runners["sentence-transformers ONNX int8 (avx512_vnni)"] = lambda xs: st_int8.encode(xs, batch_size=32)
        for label, _key, model, kwargs in _variants(threads, batch_sizes):
            runners[label] = _embedder(model, kwargs)
        for fn in runners.values():  # warm-up: sessions, allocators, thread pools
            fn(sentences[:64])
        # The sentences are timed in chunks, each chunk interleaved over all variants and rounds;
        # a variant's time is the sum over chunks of its best round. A burst of background load
        # then spoils one chunk of one round, not a whole variant's figure.
        size = -(-n // chunks)
        parts = [sentences[i : i + size] for i in range(0, n, size)]
        best = {k: [float("inf")] * len(parts) for k in runners}
        pieces: dict[str, list[np.ndarray]] = {k: [np.empty(0)] * len(parts) for k in runners}
        for r in range(rounds):
            for c, part in enumerate(parts):
                for name, fn in runners.items():
                    start = time.perf_counter()
                    pieces[name][c] = fn(part)
                    best[name][c] = min(best[name][c], time.perf_counter() - start)
            print(f"  round {r}: " + ", ".join(f"{k} {sum(v):.2f}s" for k, v in best.items()), flush=True)
        outputs = {k: np.concatenate(v) for k, v in pieces.items()}
        total = {k: sum(v) for k, v in best.items()}
    ref = outputs[ST]
    rows = []
    for name in runners:
        cos = _cosines(ref, outputs[name])
        rows.append(
            {
                "variant": name,
                "sentences_per_s": n / total[name],
                "ratio_vs_st": total[ST] / total[name],
                "min_cos": float(cos.min()),
                "mean_cos": float(cos.mean()),
            }
        )
    return {"rows": rows, "notes": notes}


def _uptime() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/loadavg").read_text(encoding="utf-8").strip()
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def render(results: dict[str, Any]) -> str:
    """The docs' markdown table for a ``--json`` result: variant, sentences/s, ratio, min and mean cosine."""
    machine = results["machine"]
    lines = [
        f"{results['n']} sentences, {results['threads']} threads, in {results.get('chunks', 1)} chunks, each the best of "
        f"{results['rounds']} interleaved rounds; "
        f"{machine['cpu']}, {machine['cores']} cores; load average {machine['load_before']} before, "
        f"{machine['load_after']} after.",
        "",
        "| variant | sentences/s | vs sentence-transformers | min cos | mean cos |",
        "|---|---|---|---|---|",
    ]
    for row in results["embed"]["rows"]:
        lines.append(
            f"| {row['variant']} | {row['sentences_per_s']:.1f} | {row['ratio_vs_st']:.2f}x | "
            f"{row['min_cos']:.5f} | {row['mean_cos']:.6f} |"
        )
    lines += [f"\n{note}" for note in results["embed"].get("notes", [])]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="200 sentences, 1 round, 1 chunk: for trying things")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=5, help="timing chunks (see bench); 1: whole runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--batch-sizes",
        default="32,16,8",
        help="batch sizes for ort-int8-rows, comma-separated; the smallest also runs for "
        "sentence-transformers, ORT fp32 and the mixed configuration",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--render", type=Path, help="print the markdown table of a --json result and exit")
    args = parser.parse_args()
    if args.render:
        print(render(json.loads(args.render.read_text(encoding="utf-8"))))
        return
    if args.quick:
        args.n, args.rounds, args.chunks = 200, 1, 1
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from aikit.model.artifact import library_versions
    from aikit.sysinfo import cpu_flags, cpu_model

    results: dict[str, Any] = {
        "n": args.n,
        "rounds": args.rounds,
        "chunks": args.chunks,
        "threads": args.threads,
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "cpu_flags": sorted(cpu_flags()),
            "platform": platform.platform(),
            "load_before": _uptime(),
        },
        "versions": library_versions(),
    }
    print(f"load average before: {results['machine']['load_before']}", flush=True)
    results["embed"] = bench(
        args.n, args.rounds, args.threads, [int(b) for b in args.batch_sizes.split(",")], args.chunks
    )
    results["machine"]["load_after"] = _uptime()
    for row in results["embed"]["rows"]:
        print(json.dumps(row), flush=True)
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
