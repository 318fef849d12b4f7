"""ONNX Runtime backend vs its competitors, side by side in one process (2 threads by default).

Sections (run all, or name some):

- ``embed``: all-MiniLM-L6-v2 over N real sentences: sentence-transformers fp32 ``encode`` vs aikit
  torch vs aikit ORT fp32 / fused / dynamic int8 (with and without the FFN-output + first/last
  layer exclusions), sentences/s, ratio to sentence-transformers, min/mean cosine vs it.
- ``gen``: SmolLM2-135M-Instruct, batch 1, greedy, 64 new tokens: transformers ``generate`` vs aikit
  torch vs aikit ORT fp32 / int4 vs onnxruntime-genai on the same graphs, tokens/s.
- ``overhead``: MiniLM at batch 1: bare ``InferenceSession.run`` vs ``backend.forward`` vs ``predict``.

Every competitor runs once per round, rounds interleave (background load hits all alike) and the
best round counts. Usage::

    python benchmarks/ort_bench.py [embed gen overhead] [--n 1000] [--rounds 2] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

PROMPT = "Explain in a few sentences why the sky is blue."
# Exclusions found by the prototype (docs/how-to/onnxruntime.md): the FFN-output MatMuls (inputs
# after GELU are heavy-tailed) and all of layers 0 and 5 stay float32.
INT8_EXCLUDE = ("*layer.?/output/dense/MatMul", "*layer.0/*", "*layer.5/*", "Attention_0", "Attention_5")


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    best = {k: float("inf") for k in fns}
    for r in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            took = time.perf_counter() - start
            best[name] = min(best[name], took)
            print(f"  round {r} {name}: {took:.2f}s", flush=True)
    return best


def bench_embed(n: int, rounds: int, threads: int) -> list[dict[str, Any]]:
    import torch
    from corpus import load_sentences
    from sentence_transformers import SentenceTransformer

    import aikit
    from aikit.defaults import default_model_path

    torch.set_num_threads(threads)
    path = default_model_path("minilm")
    sentences = load_sentences(n)
    st = SentenceTransformer(str(path), device="cpu")
    torch_model = aikit.Model.load(path, task="feature-extraction", threads=threads)
    plain = torch_model.to("onnxruntime", threads=threads, backend_options={"fusions": False})
    fused = torch_model.to("onnxruntime", threads=threads)
    calibration = load_sentences(2400)[-200:]  # not among the timed sentences
    int8 = fused.compress("ort-int8-dynamic", calibration=calibration, measure_speed=False)
    int8_ex = fused.compress(
        f"ort-int8-dynamic:exclude={'|'.join(INT8_EXCLUDE)}", calibration=calibration, measure_speed=False
    )
    outputs: dict[str, np.ndarray] = {}
    runners: dict[str, Callable[[], Any]] = {
        "sentence-transformers fp32": lambda: outputs.__setitem__("st", st.encode(sentences, batch_size=32)),
        "aikit torch fp32": lambda: outputs.__setitem__("torch", torch_model.embed(sentences, batch_size=32)),
        "aikit ORT fp32": lambda: outputs.__setitem__("plain", plain.embed(sentences, batch_size=32)),
        "aikit ORT fp32 + fusions": lambda: outputs.__setitem__("fused", fused.embed(sentences, batch_size=32)),
        "aikit ORT int8 (all layers)": lambda: outputs.__setitem__("int8", int8.embed(sentences, batch_size=32)),
        "aikit ORT int8, exclusions": lambda: outputs.__setitem__("int8_ex", int8_ex.embed(sentences, batch_size=32)),
    }
    keys = dict(zip(runners, ["st", "torch", "plain", "fused", "int8", "int8_ex"]))
    warm = sentences[:64]  # warm-up: sessions, allocator, thread pools
    st.encode(warm, batch_size=32)
    for model in (torch_model, plain, fused, int8, int8_ex):
        model.embed(warm, batch_size=32)
    best = interleaved(runners, rounds)
    ref = outputs["st"]
    rows = []
    for name, key in keys.items():
        got = outputs[key]
        cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
        rows.append(
            {
                "variant": name,
                "sentences_per_s": n / best[name],
                "ratio_vs_st": best["sentence-transformers fp32"] / best[name],
                "min_cos": float(cos.min()),
                "mean_cos": float(cos.mean()),
            }
        )
    return rows


def bench_gen(new_tokens: int, rounds: int, threads: int) -> list[dict[str, Any]]:
    import torch

    import aikit
    from aikit.defaults import default_model_path

    torch.set_num_threads(threads)
    torch_model = aikit.Model.load(default_model_path("smollm2"), backend="torch", threads=threads)
    fp32 = torch_model.to("onnxruntime", threads=threads)
    int4 = fp32.compress("ort-int4-weight-only", measure_speed=False)
    tok = torch_model.parts.tokenizer
    ids = tok.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=False)
    prompt_ids = tok(ids, add_special_tokens=False)["input_ids"]
    module = torch_model.backend.torch_module()
    tokens: dict[str, list[int]] = {}

    def hf() -> None:
        t = torch.tensor([prompt_ids])
        with torch.inference_mode():
            out = module.generate(
                t,
                attention_mask=torch.ones_like(t),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
            )
        tokens["transformers generate fp32"] = out[0, len(prompt_ids) :].tolist()

    def aikit_run(name: str, model: Any) -> Callable[[], None]:
        arrays = {
            "input_ids": np.asarray([prompt_ids]),
            "attention_mask": np.ones((1, len(prompt_ids)), dtype=np.int64),
        }
        opts = aikit.contracts.options.GenerationOptions(max_new_tokens=new_tokens)

        def run() -> None:  # the backend's decode loop, as predict drives it (no EOS stop: fixed length)
            tokens[name] = [int(s[0]) for s in model.backend.generate(arrays, opts)]

        return run

    runners: dict[str, Callable[[], None]] = {
        "transformers generate fp32": hf,
        "aikit torch fp32": aikit_run("aikit torch fp32", torch_model),
        "aikit ORT fp32": aikit_run("aikit ORT fp32", fp32),
        "aikit ORT int4": aikit_run("aikit ORT int4", int4),
    }
    try:
        import onnxruntime_genai as og

        for name, model in (("onnxruntime-genai fp32", fp32), ("onnxruntime-genai int4", int4)):
            config = og.Config(str(model.backend.folder))
            config.clear_providers()
            config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
            og_model = og.Model(config)

            def genai_run(name: str = name, og_model: Any = og_model) -> None:
                params = og.GeneratorParams(og_model)
                params.set_search_options(
                    max_length=len(prompt_ids) + new_tokens, min_length=len(prompt_ids) + new_tokens, do_sample=False
                )
                gen = og.Generator(og_model, params)
                gen.append_tokens(prompt_ids)
                out = []
                while not gen.is_done():
                    gen.generate_next_token()
                    out.append(int(gen.get_next_tokens()[0]))
                tokens[name] = out

            runners[name] = genai_run
    except ImportError:
        print("onnxruntime-genai is not installed: skipped")
    best = interleaved(runners, rounds)  # round 0 doubles as the warm-up: the best round counts
    ref = tokens["transformers generate fp32"]
    rows = []
    for name in runners:
        got = tokens[name]
        agree = next((i for i, (a, b) in enumerate(zip(ref, got)) if a != b), min(len(ref), len(got)))
        rows.append(
            {
                "variant": name,
                "tokens_per_s": len(got) / best[name],
                "new_tokens": len(got),
                "identical_prefix_vs_transformers": agree,
            }
        )
    return rows


def bench_overhead(threads: int, calls: int = 300, blocks: int = 5) -> list[dict[str, Any]]:
    import aikit
    from aikit.defaults import default_model_path

    model = aikit.Model.load(
        default_model_path("minilm"), task="feature-extraction", backend="onnxruntime", threads=threads
    )
    text = "A short sentence to embed."
    batch = model.task.collate(model.task.preprocess([text], max_length=None))
    session = model.backend.sessions["model"]
    feed = {k: np.ascontiguousarray(v) for k, v in batch.items() if k in {i.name for i in session.get_inputs()}}
    tokenizer = model.parts.tokenizer

    def by_hand() -> Any:  # what a user writes without aikit: tokenize, run, mean-pool, normalise
        enc = tokenizer([text], return_tensors="np", return_token_type_ids=False)
        hidden = session.run(None, {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})[0]
        mask = enc["attention_mask"][..., None]
        vec = (hidden * mask).sum(1) / mask.sum(1)
        return vec / np.linalg.norm(vec, axis=1, keepdims=True)

    fns = {
        "bare InferenceSession.run": lambda: session.run(None, feed),
        "by hand: tokenizer + InferenceSession.run + pooling": by_hand,
        "aikit backend.forward": lambda: model.backend.forward(batch),
        "aikit predict (tokenize + run + pool)": lambda: model.predict(text),
    }
    for fn in fns.values():
        fn()
    best = {k: float("inf") for k in fns}
    for _ in range(blocks):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / calls)
    bare, hand = best["bare InferenceSession.run"], best["by hand: tokenizer + InferenceSession.run + pooling"]
    return [
        {"call": k, "us_per_call": v * 1e6, "overhead_vs_bare_run": v / bare - 1, "overhead_vs_by_hand": v / hand - 1}
        for k, v in best.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", default=["embed", "gen", "overhead"])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from aikit.model.artifact import library_versions
    from aikit.sysinfo import cpu_model

    results: dict[str, Any] = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "load": os.getloadavg()},
        "versions": library_versions(),
    }
    for name, fn in (
        ("embed", lambda: bench_embed(args.n, args.rounds, args.threads)),
        ("gen", lambda: bench_gen(args.new_tokens, args.rounds, args.threads)),
        ("overhead", lambda: bench_overhead(args.threads)),
    ):
        if name in args.sections:
            results[name] = fn()
            for row in results[name]:
                print(json.dumps(row), flush=True)
    results["machine"]["load_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
