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
