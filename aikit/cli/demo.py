"""The offline demo: semantic search with MiniLM and a chat answer from SmolLM2, both packaged
inside PyPI wheels, with what was done and how long each step took."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aikit.defaults import DEFAULT_TASKS, default_model_path
from aikit.model.model import Model

__all__ = ["run_demo"]

DOCUMENTS = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "The stock market fell sharply after the interest rate announcement.",
    "A balanced diet includes fruit, vegetables, grains and protein.",
    "Python is a popular programming language for data science.",
    "The goalkeeper saved a penalty in the final minute of the match.",
    "Mount Everest is the highest mountain above sea level.",
    "Regular exercise improves cardiovascular health.",
]
QUERIES = ["Which landmark is in France?", "How do plants make energy?", "What language do data scientists use?"]
QUESTION = "In one sentence, what is the capital of France?"


def run_demo(
    *,
    llm: bool = True,
    echo: Callable[[str], None] = print,
    max_new_tokens: int = 32,
    optimize_seconds: float | None = 120.0,
) -> dict[str, Any]:
    """Run the demo, printing each step; returns the timings and answers for programmatic use.

    With ``optimize_seconds``, MiniLM is first optimized for this machine (``Model.optimize`` on
    real sentences from Python's own documentation; no new candidate starts after that many
    seconds, so a candidate under way may run past them) and the search runs on the model it
    chose; the chat model runs on the fastest path its search finds.
    """
    out: dict[str, Any] = {}
    steps = 2
    t0 = time.perf_counter()
    embedder = Model.load(default_model_path("minilm"), task=DEFAULT_TASKS["minilm"])
    out["minilm_load_s"] = time.perf_counter() - t0
    echo(f"[1/{steps}] loaded all-MiniLM-L6-v2 on {embedder.backend_name} in {out['minilm_load_s']:.1f}s")
    if optimize_seconds is not None:
        embedder = _optimized(embedder, "minilm", out, echo, optimize_seconds, max_quality_drop=0.01)
    t0 = time.perf_counter()
    docs = embedder.embed(DOCUMENTS)
    queries = embedder.embed(QUERIES)
    out["search_s"] = time.perf_counter() - t0
    scores = queries @ docs.T
    out["search"] = []
    for q, row in zip(QUERIES, scores, strict=True):
        best = int(row.argmax())
        out["search"].append({"query": q, "answer": DOCUMENTS[best], "score": float(row[best])})
        echo(f"      {q!r} -> {DOCUMENTS[best]!r} (cosine {row[best]:.3f})")
    echo(f"      embedded {len(DOCUMENTS) + len(QUERIES)} sentences and searched in {out['search_s'] * 1000:.0f} ms")
    if not llm:
        return out
    t0 = time.perf_counter()
    chat = Model.load(default_model_path("smollm2"))
    out["smollm2_load_s"] = time.perf_counter() - t0
    echo(f"[2/{steps}] loaded SmolLM2-135M-Instruct (GGUF) on {chat.backend_name} in {out['smollm2_load_s']:.1f}s")
    if optimize_seconds is not None:
        chat = _optimized(chat, "smollm2", out, echo, optimize_seconds, max_quality_drop=0.02)
    t0 = time.perf_counter()
    answer = chat.predict(QUESTION, max_new_tokens=max_new_tokens)
    elapsed = time.perf_counter() - t0
    out.update(answer=answer.text, generate_s=elapsed, tokens=len(answer.token_ids))
    echo(f"      Q: {QUESTION}")
    echo(f"      A: {answer.text}")
    echo(
        f"      {len(answer.token_ids)} tokens in {elapsed:.2f}s "
        f"({len(answer.token_ids) / elapsed:.1f} tokens/s, greedy)"
    )
    return out


def _optimized(
    model: Model,
    name: str,
    out: dict[str, Any],
    echo: Callable[[str], None],
    seconds: float,
    *,
    max_quality_drop: float,
) -> Model:
    """``model.optimize`` on real sentences within ``seconds``; prints the outcome in a few lines."""
    from aikit.sample_text import load_sentences

    echo(
        f"      optimizing for this machine (max quality drop {max_quality_drop}; "
        f"no new candidate starts after {seconds:.0f}s)..."
    )
    t0 = time.perf_counter()
    best = model.optimize(
        calibration=load_sentences(160 if not model.task.generative else 48, seed=7),
        max_quality_drop=max_quality_drop,
        budget_seconds=seconds,
    )
    report = best.optimization_report
    out[f"{name}_optimize_s"] = time.perf_counter() - t0
    out[f"{name}_optimize"] = report.to_dict()
    tried = [c for c in report.candidates if c.status != "not tried"]
    chosen = report.chosen_result
    echo(
        f"      tried {len(tried)} of {len(report.candidates)} candidates in {out[f'{name}_optimize_s']:.0f}s"
        + (f" ({report.stopped_because})" if report.partial else "")
    )
    if chosen is not None:
        echo(
            f"      chosen: {chosen.label}: {chosen.speedup or 1.0:.2f}x the model as loaded "
            f"({chosen.throughput or 0:.0f} {report.throughput_unit}), quality drop {chosen.quality_drop or 0.0:.4f} "
            f"({report.quality_metric})"
        )
    return best
