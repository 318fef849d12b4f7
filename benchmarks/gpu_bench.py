"""GPU throughput: aikit's CUDA backend against plain transformers (eager attention) on the same GPU.

    python benchmarks/gpu_bench.py [--json out.json] [--new-tokens 64] [--rounds 3]

Measures, in one process and one run (best of ``--rounds`` after a warm-up):
- all-MiniLM-L6-v2 sentence embeddings, sentences/s at batch 256 (tokenization included on both sides);
- SmolLM2-135M-Instruct greedy decoding, generated tokens/s at batch 1 and batch 32.

Competitors: ``transformers eager`` (the model as ``from_pretrained`` gives it, fp32, eager attention,
``model.generate`` with its default dynamic cache), ``aikit cuda`` (bfloat16/float16, SDPA, static
cache) and ``aikit cuda compile`` (the same plus torch.compile with CUDA graphs). Prints a table and
the JSON record (GPU, versions, figures, ratios). Exits with status 2 when no GPU is usable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def best_of(rounds: int, run: Callable[[], float]) -> float:
    """Seconds of the fastest of ``rounds`` runs of ``run`` (which returns its own elapsed seconds)."""
    run()  # warm-up: compilation, cuDNN/cuBLAS heuristics, allocator
    return min(run() for _ in range(rounds))


def timed(fn: Callable[[], Any]) -> float:
    import torch

    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def bench_minilm(rounds: int, batch: int = 256) -> dict[str, float]:
    import torch
    from transformers import AutoModel, AutoTokenizer

    import aikit
    from aikit.defaults import default_model_path
    from benchmarks.corpus import load_sentences

    path = default_model_path("minilm")
    sentences = load_sentences(batch * 4)
    tokenizer = AutoTokenizer.from_pretrained(path)
    plain = AutoModel.from_pretrained(path, attn_implementation="eager").cuda().eval()

    def run_plain() -> None:
        with torch.inference_mode():
            for i in range(0, len(sentences), batch):
                enc = tokenizer(
                    sentences[i : i + batch], padding=True, truncation=True, max_length=256, return_tensors="pt"
                ).to("cuda")
                hidden = plain(**enc).last_hidden_state
                mask = enc["attention_mask"][..., None].to(hidden.dtype)
                torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).cpu()

    results = {"transformers eager": len(sentences) / best_of(rounds, lambda: timed(run_plain))}
    for label, options in (("aikit cuda", {}), ("aikit cuda compile", {"compile": True})):
        model = aikit.Model.load(path, task="feature-extraction", backend="cuda", backend_options=options)

        def run_aikit(m: Any = model) -> float:
            return timed(lambda: m.embed(sentences, batch_size=batch))

        results[label] = len(sentences) / best_of(rounds, run_aikit)
        del model
    return results


def bench_smollm2(rounds: int, batch: int, new_tokens: int) -> dict[str, float]:
    import torch

    import aikit
    from aikit.defaults import default_model_path
    from benchmarks.corpus import load_sentences

    path = default_model_path("smollm2")
    prompts = [f"Explain this sentence: {s}" for s in load_sentences(batch)]
    results: dict[str, float] = {}
    for label, options in (("aikit cuda", {}), ("aikit cuda compile", {"compile": True})):
        model = aikit.Model.load(path, backend="cuda", backend_options=options)
        counted: list[int] = []

        def run(m: Any = model, out: list[int] = counted) -> float:
            def once() -> None:
                generated = m.predict(prompts, max_new_tokens=new_tokens, batch_size=batch)
                out.append(sum(len(r.token_ids) for r in generated))

            return timed(once)

        seconds = best_of(rounds, run)
        results[label] = counted[-1] / seconds
        tokenizer = model.parts.tokenizer
        module = model.backend.torch_module()
        del model
    # The same weights as plain transformers would hold them: fp32, eager attention, dynamic cache.
    plain = type(module)(module.config).eval()
    plain.load_state_dict({k: v.float() for k, v in module.state_dict().items()})
    plain.set_attn_implementation("eager")
    plain = plain.cuda()
    del module
    tokenizer.padding_side = "left"
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
        for p in prompts
    ]
    enc = tokenizer(texts, padding=True, add_special_tokens=False, return_tensors="pt").to("cuda")
    eos = tokenizer.eos_token_id
    generated: list[int] = []

    def run_plain() -> None:
        with torch.inference_mode():
            out = plain.generate(**enc, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        generated.append(sum(row.index(eos) if eos in row else len(row) for row in new))

    seconds = best_of(rounds, lambda: timed(run_plain))
    results["transformers eager"] = generated[-1] / seconds
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="also write the JSON record here")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from aikit_cuda import CudaBackend

    reason = CudaBackend.unavailable_reason()
    if reason:
        print(f"gpu_bench: no usable GPU: {reason}", file=sys.stderr)
        return 2
    import torch

    from aikit.sysinfo import installed_versions

    record: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(0),
        "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
        "versions": {**installed_versions(), "cuda": torch.version.cuda},
        "new_tokens": args.new_tokens,
        "results": {},
    }
    record["results"]["minilm sentences/s (batch 256)"] = bench_minilm(args.rounds)
    for batch in (1, 32):
        record["results"][f"smollm2 tokens/s (batch {batch})"] = bench_smollm2(args.rounds, batch, args.new_tokens)
    print(
        f"\n{record['gpu']} (compute capability {record['compute_capability']}), "
        f"torch {torch.__version__}, CUDA {torch.version.cuda}"
    )
    print(f"{'workload':34} {'competitor':22} {'throughput':>12} {'vs eager':>9}")
    for workload, figures in record["results"].items():
        base = figures["transformers eager"]
        for label, value in figures.items():
            print(f"{workload:34} {label:22} {value:12.1f} {value / base:8.2f}x")
        figures_ratio = {
            f"{k} / transformers eager": round(v / base, 3) for k, v in figures.items() if k != "transformers eager"
        }
        record["results"][workload] = {**{k: round(v, 2) for k, v in figures.items()}, **figures_ratio}
    text = json.dumps(record, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
