"""Benchmark tables in docs/ are generated from the benchmark's JSON, so text and figures cannot drift."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (page, marker, benchmark script, its JSON output)
TABLES = [
    ("docs/how-to/serve.md", "load-test", "benchmarks/load_test.py", "docs/assets/load-test.json"),
    ("docs/how-to/gguf.md", "llm-bench", "benchmarks/llm_bench.py", "docs/assets/llm-bench.json"),
]


def _module(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


@pytest.mark.parametrize(("page", "marker", "script", "data"), TABLES)
def test_the_page_shows_what_the_benchmark_renders_from_its_json(
    page: str, marker: str, script: str, data: str
) -> None:
    text = (ROOT / page).read_text(encoding="utf-8")
    shown = text.split(f"<!-- {marker}:begin -->\n")[1].split(f"<!-- {marker}:end -->")[0]
    payload = json.loads((ROOT / data).read_text(encoding="utf-8"))
    # The page holds what ``--render`` prints: the rendered text and a line end.
    assert shown.rstrip("\n") == _module(script).render(payload).rstrip("\n")


def test_llm_bench_renders_the_int8_engine_and_the_quality_bar() -> None:
    """A run with the int8-activation engine shows it as its own column and row, its load time, and
    the issue's perplexity bar (llama.cpp's + 0.5%) judged both ways; older runs show neither."""
    bench = _module("benchmarks/llm_bench.py")
    payload = json.loads((ROOT / "docs/assets/llm-bench.json").read_text(encoding="utf-8"))
    # The run as it would be without the int8 engine (the committed one has it): no bar, no column.
    int8 = {bench.INT8, bench.INT8_PPL}
    for key, rows in payload.items():
        if isinstance(rows, list):
            payload[key] = [r for r in rows if not (isinstance(r, dict) and r.get("engine") in int8)]
    payload["context"].pop("load_int8_s", None)
    if "bandwidth" in payload:
        payload["bandwidth"]["rows"] = [r for r in payload["bandwidth"]["rows"] if r["engine"] not in int8]
    assert "Quality bar" not in bench.render(payload)
    assert bench.INT8 not in bench.render(payload)
    payload["context"]["load_int8_s"] = 5.0
    speed = []
    for row in payload["speed"]:  # the int8 engine runs right after the default one, as Engines.runners orders them
        speed.append(row)
        if row["engine"] == bench.DEFAULT:
            speed.append({**row, "engine": bench.INT8, "tokens_per_s": 2 * row["tokens_per_s"]})
    payload["speed"] = speed
    llama = next(r["perplexity"] for r in payload["ppl"] if r["engine"] == bench.LLAMA_PPL)
    payload["ppl"].append({"engine": bench.INT8_PPL, "perplexity": llama * 1.004, "vs_float32": 0.0})
    text = bench.render(payload)
    assert f"| prompt | {bench.DEFAULT} | {bench.INT8} |" in text
    assert '`backend_options={"accuracy_level": 4}` 5.0 s' in text
    assert f"| {bench.INT8_PPL} | {llama * 1.004:.3f} |" in text
    assert f"{llama * 1.005:.3f}; aikit with int8 activations: {llama * 1.004:.3f}, within it." in text
    payload["ppl"][-1]["perplexity"] = llama * 1.006
    assert "**above it**" in bench.render(payload)


def test_llm_bench_judges_the_targets_from_the_figures() -> None:
    """The targets' verdicts follow the figures in the JSON: raise aikit's rows past the bars and they
    read as met; the best anchor is the fastest (speed) or the lowest (time to first token, memory)."""
    bench = _module("benchmarks/llm_bench.py")
    payload = json.loads((ROOT / "docs/assets/llm-bench.json").read_text(encoding="utf-8"))
    prompts = list(dict.fromkeys(r["prompt"] for r in payload["speed"]))
    best = {
        p: max(r["tokens_per_s"] for r in payload["speed"] if r["prompt"] == p and r["engine"] in bench.ANCHORS)
        for p in prompts
    }
    for row in payload["speed"]:
        if row["engine"] == bench.INT8:
            row["tokens_per_s"] = 1.51 * best[row["prompt"]]
        if row["engine"] == bench.DEFAULT:
            row["tokens_per_s"] = 1.49 * best[row["prompt"]]
    lowest = min(r["peak_rss_mb"] for r in payload["rss"] if r["engine"] in bench.ANCHORS)
    for row in payload["rss"]:
        if row["engine"] == bench.DEFAULT:
            row["peak_rss_mb"] = lowest
    text = bench.render(payload)
    n = len(prompts)
    assert f"the default on 0 of {n} prompts, int8 activations on {n} of {n}." in text
    assert "| 1.49x | 1.51x |" in text
    assert f"the default {lowest:.0f} MB (1.00x, met)" in text
    # the loop target: aikit's time per step against genai's on the same graph, prompt by prompt
    genai = {r["prompt"]: r["ms_per_step"] for r in payload["loop"] if r["engine"] == bench.GENAI_OWN}
    for factor, count in ((0.99, n), (1.01, 0)):
        for row in payload["loop"]:
            if row["engine"] == bench.AIKIT_OWN:
                row["ms_per_step"] = factor * genai[row["prompt"]]
        assert f"genai's C++ loop (same graph, per step): {count} of {n} prompts." in bench.render(payload)
