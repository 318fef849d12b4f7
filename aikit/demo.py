"""The offline demo: semantic search with MiniLM and a chat answer from SmolLM2, both packaged
inside PyPI wheels, with what was done and how long each step took."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .defaults import default_model_path
from .model import Model

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


def run_demo(*, llm: bool = True, echo: Callable[[str], None] = print, max_new_tokens: int = 32) -> dict[str, Any]:
    """Run the demo, printing each step; returns the timings and answers for programmatic use."""
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    embedder = Model.load(default_model_path("minilm"), task="feature-extraction")
    out["minilm_load_s"] = time.perf_counter() - t0
    echo(f"[1/2] loaded all-MiniLM-L6-v2 on {embedder.backend_name} in {out['minilm_load_s']:.1f}s")
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
    echo(f"[2/2] loaded SmolLM2-135M-Instruct (GGUF) on {chat.backend_name} in {out['smollm2_load_s']:.1f}s")
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
