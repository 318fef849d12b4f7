"""Compression benchmark: quality, size and speed of aikit's strategies on the packaged real models.

    python benchmarks/compress_bench.py                # both models
    python benchmarks/compress_bench.py --only minilm  # all-MiniLM-L6-v2 only
    python benchmarks/compress_bench.py --only smollm2 --ppl-texts 300

MiniLM: embeddings of >= 1,000 real English sentences (``corpus.load_sentences``) compared with
fp32 (cosine min / mean), file size of the saved artifact, and embedding throughput measured side
by side with fp32 in this process on the first ``--timed`` sentences (interleaved rounds, best of each). Calibration inputs are a
disjoint slice of the corpus. SmolLM2-135M: perplexity on held-out sentences (not used for
calibration) and greedy decoding tokens/s. Prints one table per model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import load_sentences

import aikit
from aikit.defaults import default_model_path
from aikit.sysinfo import installed_versions, machine_info

MINILM_VARIANTS: list[tuple[str, list[Any], dict[str, Any]]] = [
    ("int8-dynamic", ["int8-dynamic"], {}),
    ("int8-dynamic guard 0.005", ["int8-dynamic"], {"max_quality_drop": 0.005}),
    ("int8-static smoothquant", ["int8-static"], {}),
    ("int8-dynamic per-tensor", ["int8-dynamic:per_token=false"], {}),
    ("prune-structured ffn=0.45 +recovery", ["prune-structured:ffn=0.45,recovery_seconds={rec}"], {}),
    ("prune-structured ffn=0.1 +recovery", ["prune-structured:ffn=0.1,recovery_seconds={rec}"], {}),
]


def file_bytes(model: aikit.Model) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = model.save(Path(tmp) / "m")
        return (out / "model.safetensors").stat().st_size


def timed_embed(models: list[aikit.Model], texts: list[str], rounds: int) -> list[float]:
    """Best-of-``rounds`` seconds to embed ``texts`` with each model, interleaved (warm-up first)."""
    for m in models:
        m.embed(texts[:64])
    best = [float("inf")] * len(models)
    for _ in range(rounds):
        for i, m in enumerate(models):
            start = time.perf_counter()
            m.embed(texts)
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def bench_minilm(args: argparse.Namespace) -> list[dict[str, Any]]:
    sentences = load_sentences()
    evaluation, calibration = sentences[: args.n], sentences[-args.calibration :]
    fp32 = aikit.Model.load(default_model_path("minilm"), task="feature-extraction")
    reference = fp32.embed(evaluation)
    base_size = file_bytes(fp32)
    rows = [{"variant": "fp32", "cos_min": 1.0, "cos_mean": 1.0, "size_pct": 100.0, "speedup": 1.0, "compress_s": 0.0}]
    for label, strategies, kwargs in MINILM_VARIANTS:
        if args.variants and not any(v in label for v in args.variants.split(",")):
            continue
        specs = [s.format(rec=args.recovery) for s in strategies]
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            small = fp32.compress(*specs, calibration=calibration, measure_speed=False, **kwargs)
        seconds = time.perf_counter() - start
        cos = cosines(reference, small.embed(evaluation))
        t_fp32, t_small = timed_embed([fp32, small], evaluation[: args.timed], args.rounds)
        report = small.compression_report
        rows.append(
            {
                "variant": label,
                "cos_min": float(cos.min()),
                "cos_mean": float(cos.mean()),
                "size_pct": 100.0 * file_bytes(small) / base_size,
                "speedup": t_fp32 / t_small,
                "fp32_sent_per_s": args.timed / t_fp32,
                "sent_per_s": args.timed / t_small,
                "compress_s": seconds,
                "kept_fp32": report.excluded_layers,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def perplexity(model: aikit.Model, texts: list[str]) -> float:
    """Token-level perplexity of ``texts`` (each scored on its own, no chat template)."""
    from aikit.measure.quality import _lm_summary, collate_batches

    nll = tokens = 0.0
    for batch in collate_batches(model.task, texts):
        summary = _lm_summary(model.backend.forward(batch)["logits"], batch)
        nll += summary["nll"]
        tokens += summary["tokens"]
    return float(np.exp(nll / tokens))


def decode_speed(model: aikit.Model, prompts: list[str], new_tokens: int) -> float:
    model.predict(prompts[0], max_new_tokens=4)
    start = time.perf_counter()
    produced = sum(len(model.predict(p, max_new_tokens=new_tokens).token_ids) for p in prompts)
    return produced / (time.perf_counter() - start)


def bench_smollm2(args: argparse.Namespace) -> list[dict[str, Any]]:
    sentences = load_sentences()
    held_out, calibration = sentences[: args.ppl_texts], sentences[-args.calibration :]
    prompts = sentences[1000:1004]
    fp32 = aikit.Model.load(default_model_path("smollm2"), backend="torch")  # torch strategies start from float32
    base_ppl = perplexity(fp32, held_out)
    base_size = file_bytes(fp32)
    base_tps = decode_speed(fp32, prompts, 32)
    rows = [{"variant": "fp32", "ppl": base_ppl, "ppl_delta_pct": 0.0, "size_pct": 100.0, "decode_tok_s": base_tps}]
    print(json.dumps(rows[-1]), flush=True)
    # (spec, prompts, new tokens): ATen's packed low-bit kernels are slow without AVX-512, so
    # their rows decode fewer tokens (tokens/s is still comparable).
    specs = (
        ("int8-weight-only", 4, 32),
        ("int4-weight-only", 4, 32),  # group 32, HQQ (never worse than RTN per group), output head kept
        ("int4-weight-only:method=rtn", 4, 32),
        ("int4-weight-only:group_size=64", 4, 32),
        ("int4-weight-only:group_size=64,method=rtn", 4, 32),
        ("int4-weight-only:group_size=128", 4, 32),
        ("int4-weight-only:group_size=128,method=rtn", 4, 32),
        ("int4-weight-only:include_head=true", 4, 32),
        ("int8-weight-only:kernel=packed", 1, 16),
        ("int4-weight-only:kernel=packed", 1, 8),
    )
    for spec, n_prompts, new_tokens in specs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            small = fp32.compress(spec, calibration=calibration[:64], measure_speed=False)
        # packed rows hold the same weights as their unpacked rows (same perplexity); only speed differs
        ppl = perplexity(small, held_out) if "kernel=packed" not in spec else float("nan")
        rows.append(
            {
                "variant": spec,
                "ppl": ppl,
                "ppl_delta_pct": 100.0 * (ppl / base_ppl - 1.0),
                "size_pct": 100.0 * file_bytes(small) / base_size,
                "decode_tok_s": decode_speed(small, prompts[:n_prompts], new_tokens),
                "fp32_decode_tok_s_again": decode_speed(fp32, prompts[:n_prompts], new_tokens),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    keys = [k for k in rows[-1] if k != "kept_fp32"]
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["minilm", "smollm2"])
    parser.add_argument("--n", type=int, default=1200, help="MiniLM evaluation sentences (>= 1000)")
    parser.add_argument("--calibration", type=int, default=1200, help="calibration sentences (disjoint slice)")
    parser.add_argument("--timed", type=int, default=256, help="sentences timed per round (speed only)")
    parser.add_argument("--recovery", type=int, default=240, help="prune-structured recovery budget, seconds")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per model (best is kept)")
    parser.add_argument("--variants", default="", help="comma list: only MiniLM variants whose label contains one")
    parser.add_argument("--ppl-texts", type=int, default=300, help="SmolLM2 held-out sentences for perplexity")
    args = parser.parse_args()
    print(json.dumps({"machine": machine_info(), "versions": installed_versions()}), flush=True)
    if args.only in (None, "minilm"):
        print("\nall-MiniLM-L6-v2\n" + table(bench_minilm(args)), flush=True)
    if args.only in (None, "smollm2"):
        print("\nSmolLM2-135M-Instruct\n" + table(bench_smollm2(args)), flush=True)


if __name__ == "__main__":
    main()
