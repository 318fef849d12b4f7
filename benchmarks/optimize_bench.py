"""``Model.optimize`` judged on text it never saw, against the tools a user would otherwise install.

Sections:

- ``embed``: all-MiniLM-L6-v2. ``optimize(max_quality_drop=0.01)`` calibrated on ``--calibration``
  real sentences, then the chosen model, the model as loaded and sentence-transformers fp32
  ``encode`` embed ``--n`` *other* real sentences side by side (interleaved rounds after a
  warm-up, ``--threads`` threads): sentences/s, ratio to sentence-transformers, min / mean cosine
  of each vs sentence-transformers fp32 on that unseen text.
- ``gen``: SmolLM2-135M-Instruct (the packaged Q4_1 GGUF). ``optimize(max_quality_drop=0.02)`` on
  real sentences (perplexity on the held-out ones), then decode tokens/s at batch 1, greedy, of
  the chosen model vs the model as loaded vs llama.cpp (llama-cpp-python on the GGUF itself, if
  installed) vs onnxruntime-genai's own model builder int4 (if installed), interleaved.

Writes JSON (``--json``) with the load average before the run, CPU flags and versions;
``--render FILE`` prints the markdown tables docs/how-to/optimize.md shows. Usage::

    python benchmarks/optimize_bench.py [embed] [gen] [--json out.json] [--budget 600]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import LLAMA_NOTE, measured_line, open_llama

PROMPT = "Explain in a few sentences why the sky is blue."


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Best-of-``rounds`` seconds per function; each round runs all, in alternating order."""
    for fn in fns.values():
        fn()  # warm-up
    best = {k: float("inf") for k in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            start = time.perf_counter()
            fns[name]()
            took = time.perf_counter() - start
            best[name] = min(best[name], took)
            print(f"  round {r} {name}: {took:.2f}s", flush=True)
    return best


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)  # type: ignore[no-any-return]


def _context() -> dict[str, Any]:
    from aikit.sysinfo import installed_versions, machine_info

    return {
        "load_average_before": os.getloadavg(),
        "machine": machine_info(),
        "versions": installed_versions(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def bench_embed(n: int, calibration: int, rounds: int, threads: int, budget: float) -> dict[str, Any]:
    import torch
    from sentence_transformers import SentenceTransformer

    import aikit
    from aikit.defaults import default_model_path
    from aikit.sample_text import load_sentences

    torch.set_num_threads(threads)
    sentences = load_sentences(calibration + n, seed=0)
    calib, unseen = sentences[:calibration], sentences[calibration:]
    path = default_model_path("minilm")
    model = aikit.Model.load(path, task="feature-extraction", threads=threads)
    start = time.perf_counter()
    fast = model.optimize(calibration=calib, max_quality_drop=0.01, budget_seconds=budget)
    search_s = time.perf_counter() - start
    report = fast.optimization_report
    print(report, flush=True)
    st = SentenceTransformer(str(path), device="cpu")
    outputs: dict[str, np.ndarray] = {}

    def run(name: str, fn: Callable[[], np.ndarray]) -> Callable[[], None]:
        def go() -> None:
            outputs[name] = fn()

        return go

    fns = {
        "sentence-transformers fp32": run("sentence-transformers fp32", lambda: st.encode(unseen, batch_size=32)),
        "aikit as loaded": run("aikit as loaded", lambda: model.embed(unseen, batch_size=32)),
        f"aikit optimize: {report.chosen}": run("optimized", lambda: fast.embed(unseen, batch_size=32)),
    }
    best = interleaved(fns, rounds)
    reference = outputs["sentence-transformers fp32"]
    rows = []
    keys = {"sentence-transformers fp32": "sentence-transformers fp32", "aikit as loaded": "aikit as loaded"}
    st_rate = n / best["sentence-transformers fp32"]
    for name, seconds in best.items():
        vectors = outputs[keys.get(name, "optimized")]
        cos = _cos(reference, vectors)
        rows.append(
            {
                "name": name,
                "sentences_per_s": n / seconds,
                "ratio": (n / seconds) / st_rate,
                "cos_min": float(cos.min()),
                "cos_mean": float(cos.mean()),
            }
        )
    return {"rows": rows, "search_seconds": search_s, "report": report.to_dict(), "n": n, "calibration": calibration}


def bench_gen(new_tokens: int, rounds: int, threads: int, budget: float, with_llama: bool) -> dict[str, Any]:
    import aikit
    from aikit.defaults import default_model_path
    from aikit.sample_text import load_sentences

    gguf = default_model_path("smollm2")
    model = aikit.Model.load(gguf, threads=threads)
    start = time.perf_counter()
    fast = model.optimize(calibration=load_sentences(64, seed=3), max_quality_drop=0.02, budget_seconds=budget)
    search_s = time.perf_counter() - start
    report = fast.optimization_report
    print(report, flush=True)
    counts: dict[str, int] = {}

    def aikit_run(name: str, m: aikit.Model) -> Callable[[], None]:
        def go() -> None:
            out = m.predict(PROMPT, max_new_tokens=new_tokens)
            counts[name] = len(out.token_ids)

        return go

    fns: dict[str, Callable[[], None]] = {
        "aikit as loaded": aikit_run("aikit as loaded", model),
        f"aikit optimize: {report.chosen}": aikit_run(f"aikit optimize: {report.chosen}", fast),
    }
    notes = []
    try:
        if not with_llama:
            raise ImportError("llama.cpp not requested (--llama)")
        llm = open_llama(gguf, threads, n_ctx=512)
        notes.append(LLAMA_NOTE)

        def llama_run() -> None:
            out = llm.create_chat_completion(
                messages=[{"role": "user", "content": PROMPT}], max_tokens=new_tokens, temperature=0.0
            )
            assert isinstance(out, dict)  # not streamed
            counts["llama.cpp (GGUF Q4_1)"] = int(out["usage"]["completion_tokens"])

        fns["llama.cpp (GGUF Q4_1)"] = llama_run
    except ImportError as exc:
        notes.append(f"llama.cpp not measured: {exc}")
    try:
        genai = _genai_runner(model, threads, new_tokens, counts, notes)
    except Exception as exc:  # the reference tool failing must not throw away the search above
        notes.append(f"onnxruntime-genai's builder failed here: {type(exc).__name__}: {exc}")
        genai = None
    if genai is not None:
        fns["onnxruntime-genai builder int4"] = genai
    best = interleaved(fns, rounds)
    rows = [{"name": k, "tokens_per_s": counts[k] / v, "tokens": counts[k]} for k, v in best.items()]
    return {"rows": rows, "search_seconds": search_s, "report": report.to_dict(), "notes": notes}


def _genai_runner(
    model: Any, threads: int, new_tokens: int, counts: dict[str, int], notes: list[str]
) -> Callable[[], None] | None:
    """onnxruntime-genai's own builder, int4, on the de-quantized weights saved as a HF folder."""
    try:
        import onnxruntime_genai as og
    except ImportError:
        notes.append("onnxruntime-genai is not installed: not measured")
        return None
    import subprocess

    from safetensors.torch import save_model

    tmp = Path(tempfile.mkdtemp(prefix="genai-bench-"))
    atexit.register(shutil.rmtree, tmp, True)  # removed however the benchmark ends
    hf = tmp / "hf"
    hf.mkdir()
    module = model.backend.torch_module()
    if module is None:  # Model.load(gguf) runs the file's blocks on onnxruntime: the builder needs float32 torch
        import aikit

        module = aikit.Model.load(model.parts.source.location, backend="torch").backend.torch_module()
    # As aikit's own builder call does: transformers refuses save_pretrained on a GGUF-loaded model.
    module.config.save_pretrained(hf)
    save_model(module, str(hf / "model.safetensors"))
    model.parts.tokenizer.save_pretrained(hf)
    config = json.loads((hf / "config.json").read_text())
    config.pop("quantization_config", None)
    if not config.get("architectures"):
        config["architectures"] = [type(module).__name__]
    (hf / "config.json").write_text(json.dumps(config))
    cmd = [
        sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf), "-o", str(tmp / "int4"),
        "-p", "int4", "-e", "cpu", "-c", str(tmp / "cache"), "--extra_options", "int4_accuracy_level=4",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        notes.append("onnxruntime-genai's builder failed: " + (done.stderr or done.stdout)[-400:])
        return None
    og_config = og.Config(str(tmp / "int4"))
    og_config.clear_providers()
    og_config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
    og_model = og.Model(og_config)
    tokenizer = og.Tokenizer(og_model)
    prompt = model.parts.tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer.encode(prompt)

    def go() -> None:
        params = og.GeneratorParams(og_model)
        params.set_search_options(max_length=len(ids) + new_tokens, do_sample=False)
        generator = og.Generator(og_model, params)
        generator.append_tokens(ids)
        produced = 0
        while not generator.is_done() and produced < new_tokens:
            generator.generate_next_token()
            produced += 1
        counts["onnxruntime-genai builder int4"] = produced

    return go


def render(results: dict[str, Any]) -> str:
    """The markdown docs show: machine, load average, the tables, what optimize chose."""
    ctx = results["context"]
    lines = [
        measured_line(ctx["date"], ctx["machine"], f"{ctx['load_average_before'][0]:.2f}", ctx["versions"]),
        "",
    ]
    if "embed" in results:
        e = results["embed"]
        lines += [
            f"**MiniLM**: optimize calibrated on {e['calibration']} real sentences ({e['search_seconds']:.0f} s of "
            f"search), then {e['n']} *other* sentences:",
            "",
            "| variant | sentences/s | vs sentence-transformers | min cos | mean cos |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['name']} | {r['sentences_per_s']:.1f} | {r['ratio']:.2f}x | {r['cos_min']:.4f} | {r['cos_mean']:.4f} |"
            for r in e["rows"]
        ]
        lines += ["", *_search_table(e["report"]), ""]
    if "gen" in results:
        g = results["gen"]
        lines += [
            f"**SmolLM2-135M-Instruct**, batch 1, greedy ({g['search_seconds']:.0f} s of search):",
            "",
            "| variant | tokens/s |",
            "|---|---:|",
        ]
        lines += [f"| {r['name']} | {r['tokens_per_s']:.1f} |" for r in g["rows"]]
        lines += ["", *_search_table(g["report"])]
        lines += [f"\n{n}" for n in g.get("notes", [])]
    return "\n".join(lines)


def _search_table(report: dict[str, Any]) -> list[str]:
    """The search's own table: every candidate, its status, held-out quality drop and speedup."""
    unit = report["throughput_unit"]
    out = [
        f"The search ({report['objective']}, max_quality_drop={report['max_quality_drop']}, "
        f"{report['quality_metric']}; held out: {report['held_out'].split(';')[0]}):",
        "",
        f"| candidate | status | quality drop | speedup | {unit} | size MB | why |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    order = {"chosen": 0, "within budget": 1, "rejected": 2, "not tried": 3}
    ranked = sorted(report["candidates"], key=lambda c: (order.get(c["status"], 4), -(c["speedup"] or 0.0)))
    for c in ranked:
        drop = "-" if c["quality_drop"] is None else f"{c['quality_drop']:.4f}"
        speed = "-" if c["speedup"] is None else f"{c['speedup']:.2f}x"
        rate = "-" if c["throughput"] is None else f"{c['throughput']:.1f}"
        size = "-" if c["size_bytes"] is None else f"{c['size_bytes'] / 1e6:.1f}"
        label = c["label"].replace("|", "\\|")
        out.append(f"| {label} | {c['status']} | {drop} | {speed} | {rate} | {size} | {c['reason'] or ''} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", default=["embed", "gen"])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--calibration", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=600.0)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument(
        "--llama",
        action="store_true",
        help="also time llama.cpp (llama-cpp-python); off by default: a build that crashes takes the run with it",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--render", type=Path, help="print the markdown of a --json result and exit")
    args = parser.parse_args()
    if args.render:
        print(render(json.loads(args.render.read_text())))
        return
    results: dict[str, Any] = {"context": _context()}
    if "embed" in args.sections:
        results["embed"] = bench_embed(args.n, args.calibration, args.rounds, args.threads, args.budget)
    if "gen" in args.sections:
        results["gen"] = bench_gen(args.new_tokens, args.rounds, args.threads, args.budget, args.llama)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    print(render(results))


if __name__ == "__main__":
    main()
