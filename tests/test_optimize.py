"""``Model.optimize`` on tiny models: the search, its report, its bounds, and what it may not lose.

Timings on tiny models say nothing about real speed (benchmarks/optimize_bench.py measures that);
these tests check the search's contract: every candidate is listed with a status and a reason,
the chosen one holds the quality bound on held-out inputs, its chain survives save/load, plugins
(including a third-party one from tests/plugins_src) take part with no change to the core, and a
lossy move between backends is refused.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import aikit
from aikit.optimize.search import split_calibration
from aikit.testing import fresh_host

PLUGIN_DIR = Path(__file__).parent / "plugins_src" / "aikit-test-attn-int8"
TEXTS = [
    f"the {a} {b} was {c} near {d} today"
    for a in ("red", "small", "old", "quiet")
    for b in ("cat", "dog", "bird", "fish", "model")
    for c in ("good", "bad", "fast", "slow")
    for d in ("paris", "london", "rome")
][:96]


@pytest.fixture(scope="module", autouse=True)
def cache(private_aikit_cache: Path) -> Path:
    return private_aikit_cache


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Any) -> aikit.Model:
    return aikit.Model.load(tiny_model_dir("bert-embedding"), task="feature-extraction", threads=1)


@pytest.fixture()
def third_party() -> Iterator[Any]:
    sys.path.insert(0, str(PLUGIN_DIR))
    try:
        import aikit_test_attn_int8

        yield aikit_test_attn_int8
    finally:
        sys.path.remove(str(PLUGIN_DIR))


def _vectors(model: aikit.Model) -> np.ndarray[Any, Any]:
    return model.embed(TEXTS[:8])


def test_split_holds_out_every_fourth_input() -> None:
    fit, held = split_calibration(list(range(12)))
    assert held == [3, 7, 11] and fit == [0, 1, 2, 4, 5, 6, 8, 9, 10]
    assert not set(fit) & set(held)


@dataclass(frozen=True, kw_only=True)
class Noise(aikit.CompressionConfig):
    strategy: ClassVar[str] = "noise-test"


class NoiseStrategy(aikit.Strategy):
    """Replaces every weight matrix with random values: a 'compression' far over any quality bound."""

    name = "noise-test"
    config_class = Noise
    backends: ClassVar[frozenset[str]] = frozenset({"torch"})

    def apply(
        self, backend: aikit.Backend, config: aikit.CompressionConfig, context: aikit.CompressionContext
    ) -> aikit.Backend:
        import copy

        import torch

        module = copy.deepcopy(backend.torch_module())
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in module.parameters():
                if p.ndim == 2:
                    p.copy_(torch.randn(p.shape, generator=generator))
        return backend.with_module(module)


class NoisePlugin:
    @aikit.hookimpl
    def aikit_register_strategies(self, register: Any) -> None:
        register(NoiseStrategy)


def test_search_lists_every_candidate_and_keeps_the_bound(embedder: aikit.Model, tmp_path: Path) -> None:
    candidates = [
        aikit.Candidate(backend="torch", strategies=("int8-dynamic",)),
        aikit.Candidate(backend="torch", strategies=("noise-test",)),  # far over the bound
        aikit.Candidate(backend="torch", strategies=("no-such-strategy",)),
        aikit.Candidate(backend="onnxruntime"),
        aikit.Candidate(backend="torch", strategies=("int8-dynamic",)),  # a duplicate: tried once
    ]
    with fresh_host(NoisePlugin()):
        fast = embedder.optimize(calibration=TEXTS, max_quality_drop=0.02, candidates=candidates, progress=False)
    report = fast.optimization_report
    assert isinstance(report, aikit.OptimizationReport)
    by_label = {c.label: c for c in report.candidates}
    assert len(report.candidates) == 5  # reference + 4 distinct candidates
    assert by_label["torch + no-such-strategy"].status == "rejected"
    assert "no-such-strategy" in (by_label["torch + no-such-strategy"].reason or "")
    pruned = by_label["torch + noise-test"]
    assert pruned.status == "rejected" and pruned.quality_drop is not None and pruned.quality_drop > 0.02
    assert "quality drop" in (pruned.reason or "")
    chosen = report.chosen_result
    assert chosen is not None and chosen.label == report.chosen
    assert chosen.quality_drop is not None and chosen.quality_drop <= 0.02
    for c in report.candidates:
        if c.status in ("chosen", "within budget"):
            assert c.speedup is not None and c.speedup > 0 and c.throughput and c.latency_p50_s
            assert c.size_bytes and c.size_bytes > 0
    assert report.quality_metric == "1 - cosine_min"
    assert "24 of 96" in report.held_out and "1/25" in report.held_out
    assert report.machine["cpu"] and not report.partial
    text = str(report)
    assert "chosen" in text and "no-such-strategy" in text
    json.dumps(report.to_dict())  # plain JSON
    png = report.plot(tmp_path / "pareto.png")
    assert png.stat().st_size > 1000
    # The chosen chain is saved and reproduced exactly by Model.load.
    out = fast.save(tmp_path / "out")
    again = aikit.Model.load(out)
    assert again.backend_name == fast.backend_name and again.transformations == fast.transformations
    assert np.array_equal(_vectors(again), _vectors(fast))
    assert again.optimization_report["chosen"] == report.chosen


def test_objective_size_picks_the_smallest_within_budget(embedder: aikit.Model) -> None:
    candidates = [
        aikit.Candidate(backend="torch", strategies=("int8-dynamic",)),
        aikit.Candidate(backend="torch", strategies=("int8-weight-only",)),
    ]
    small = embedder.optimize(
        calibration=TEXTS, max_quality_drop=0.05, objective="size", candidates=candidates, progress=False
    )
    report = small.optimization_report
    within = [c for c in report.candidates if c.status in ("chosen", "within budget")]
    assert report.chosen_result is not None
    assert report.chosen_result.size_bytes == min(c.size_bytes for c in within if c.size_bytes is not None)
    assert report.chosen_result.size_bytes < embedder.backend.weight_bytes()


def test_accuracy_guard_finds_exclusions_when_allowed(embedder: aikit.Model) -> None:
    # On the tiny model 60% magnitude pruning costs about 6e-5 of min cosine: over a 2e-5 bound.
    bound = 2e-5
    loose = aikit.Candidate(backend="torch", strategies=("prune-magnitude:sparsity=0.6",), guard=True)
    unguarded = aikit.Candidate(backend="torch", strategies=("prune-magnitude:sparsity=0.6",))
    model = embedder.optimize(calibration=TEXTS, max_quality_drop=bound, candidates=[loose, unguarded], progress=False)
    results = {c.label: c for c in model.optimization_report.candidates}
    assert results["torch + prune-magnitude:sparsity=0.6"].status == "rejected"
    guarded = results["torch + prune-magnitude:sparsity=0.6 (guarded)"]
    assert guarded.status in ("chosen", "within budget"), guarded.reason
    assert guarded.excluded_layers and guarded.quality_drop is not None and guarded.quality_drop <= bound
    assert any(s.get("exclude") for s in guarded.strategies)


def test_plugins_propose_candidates_including_third_party(embedder: aikit.Model, third_party: Any) -> None:
    from aikit.optimize.search import proposed_candidates

    with fresh_host(third_party):
        proposals, notes = proposed_candidates(embedder, "throughput")
    labels = [c.label for c in proposals]
    assert "torch + attn-int8-weight-only" in labels  # the third-party plugin takes part
    assert "onnxruntime + ort-int8-dynamic (guarded)" in labels
    assert "torch + int8-dynamic:per_token=false (guarded)" in labels
    assert not notes


def test_a_broken_proposer_is_reported_not_fatal(embedder: aikit.Model) -> None:
    class Broken:
        @aikit.hookimpl
        def aikit_optimize_candidates(self, model: aikit.Model, propose: Callable[..., None]) -> None:
            raise RuntimeError("boom")

    class Good:
        @aikit.hookimpl
        def aikit_optimize_candidates(self, model: aikit.Model, propose: Callable[..., None]) -> None:
            propose(aikit.Candidate(backend="torch", strategies=("int8-dynamic",)))

    with fresh_host(autoload=False) as host:
        host.ensure_loaded()
        for plugin in (Broken(), Good()):
            host.add_plugin(plugin, name=type(plugin).__name__)
        from aikit.optimize.search import proposed_candidates

        proposals, notes = proposed_candidates(embedder, "throughput")
    assert [c.label for c in proposals] == ["torch + int8-dynamic"]
    assert len(notes) == 1 and "Broken" in notes[0] and "boom" in notes[0]


# --------------------------------------------------------------------- bounds: budget and Ctrl-C
@dataclass(frozen=True, kw_only=True)
class Interrupt(aikit.CompressionConfig):
    strategy: ClassVar[str] = "interrupt-test"


class InterruptStrategy(aikit.Strategy):
    """Presses Ctrl-C (raises KeyboardInterrupt) while it compresses."""

    name = "interrupt-test"
    config_class = Interrupt
    backends: ClassVar[frozenset[str]] = frozenset({"torch"})

    def apply(
        self, backend: aikit.Backend, config: aikit.CompressionConfig, context: aikit.CompressionContext
    ) -> aikit.Backend:
        raise KeyboardInterrupt


class InterruptPlugin:
    @aikit.hookimpl
    def aikit_register_strategies(self, register: Any) -> None:
        register(InterruptStrategy)


def test_ctrl_c_returns_the_best_so_far_with_a_partial_report(embedder: aikit.Model) -> None:
    with fresh_host(InterruptPlugin()):
        candidates = [
            aikit.Candidate(backend="torch", strategies=("int8-dynamic",)),
            aikit.Candidate(backend="torch", strategies=("interrupt-test",)),
            aikit.Candidate(backend="torch", strategies=("int8-weight-only",)),
        ]
        model = embedder.optimize(calibration=TEXTS, max_quality_drop=0.05, candidates=candidates, progress=False)
    report = model.optimization_report
    assert report.partial and "Ctrl-C" in (report.stopped_because or "")
    statuses = {c.label: c.status for c in report.candidates}
    assert statuses["torch + int8-dynamic"] in ("chosen", "within budget")
    assert statuses["torch + int8-weight-only"] == "not tried"
    assert report.chosen in ("torch + int8-dynamic", "torch (as loaded)")


def test_budget_seconds_stops_trying_new_candidates(embedder: aikit.Model) -> None:
    candidates = [aikit.Candidate(backend="torch", strategies=("int8-dynamic",))]
    model = embedder.optimize(
        calibration=TEXTS, max_quality_drop=0.05, candidates=candidates, budget_seconds=1e-9, progress=False
    )
    report = model.optimization_report
    assert report.partial and "budget_seconds" in (report.stopped_because or "")
    assert report.chosen == "torch (as loaded)"
    assert next(c for c in report.candidates if c.label == "torch + int8-dynamic").reason.startswith("not tried")


def test_budget_seconds_stops_an_accuracy_guard_under_way(embedder: aikit.Model, monkeypatch: Any) -> None:
    """A guard scores one trial per layer (MiniLM's ONNX int8 guard took 38-64 s here), so once the budget
    is spent it stops there too instead of finishing: the candidate is reported as not finished."""
    import time

    from aikit.optimize import search

    real_build = search._Search.build

    def build_as_the_budget_runs_out(self: Any, candidate: Any, result: Any) -> Any:
        self.deadline = time.perf_counter()  # the budget is spent the moment this candidate starts
        return real_build(self, candidate, result)

    monkeypatch.setattr(search._Search, "build", build_as_the_budget_runs_out)
    # 60% magnitude pruning exceeds a 2e-5 bound on the tiny model, so the guard runs (as in the test above)
    guarded = aikit.Candidate(backend="torch", strategies=("prune-magnitude:sparsity=0.6",), guard=True)
    model = embedder.optimize(calibration=TEXTS, max_quality_drop=2e-5, candidates=[guarded], progress=False)
    report = model.optimization_report
    assert report.partial and "budget_seconds" in (report.stopped_because or "")
    result = next(c for c in report.candidates if c.label.endswith("(guarded)"))
    assert result.status == "not tried"
    assert (result.reason or "").startswith("not finished: its accuracy guard was stopped")
    assert report.chosen == "torch (as loaded)"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"calibration": None}, "calibration"),
        ({"calibration": "one string"}, "calibration"),
        ({"calibration": TEXTS[:4]}, "at least 8"),
        ({"calibration": TEXTS, "max_quality_drop": 1.5}, "max_quality_drop"),
        ({"calibration": TEXTS, "objective": "speed"}, "objective"),
        ({"calibration": TEXTS, "batch_size": 0}, "batch_size"),
        ({"calibration": TEXTS, "budget_seconds": -1}, "budget_seconds"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(embedder: aikit.Model, kwargs: Any, match: str) -> None:
    with pytest.raises(aikit.ConfigError, match=match):
        embedder.optimize(**kwargs)


# --------------------------------------------------------------------- nothing silently lost
def test_lossy_move_is_refused_naming_the_third_party_strategy(embedder: aikit.Model, third_party: Any) -> None:
    with fresh_host(third_party):
        small = embedder.compress("attn-int8-weight-only", calibration=TEXTS, measure_speed=False)
        with pytest.raises(aikit.BackendError, match="attn-int8-weight-only") as info:
            small.to("onnxruntime")
        assert "drop" in str(info.value)


def test_built_in_strategies_declare_what_carries(embedder: aikit.Model) -> None:
    assert "onnxruntime" in aikit.get_strategy("prune-structured").carries_to
    assert "onnxruntime" not in aikit.get_strategy("int8-dynamic").carries_to
    quantized = embedder.compress("int8-dynamic", calibration=TEXTS, measure_speed=False)
    with pytest.raises(aikit.BackendError, match="int8-dynamic"):
        quantized.to("onnxruntime")
    pruned = embedder.compress("prune-magnitude:sparsity=0.3", calibration=TEXTS, measure_speed=False)
    assert pruned.to("onnxruntime").backend_name == "onnxruntime"


# --------------------------------------------------------------------- command line
def test_cli_optimize_saves_the_choice_plots_and_prints_json(tiny_model_dir: Any, tmp_path: Path) -> None:
    """Every candidate the installed plugins propose for a tiny encoder, end to end through the CLI."""
    from typer.testing import CliRunner

    from aikit.cli import app

    calibration = tmp_path / "texts.txt"
    calibration.write_text("\n".join(TEXTS[:48]) + "\n", encoding="utf-8")
    args = [
        "optimize", str(tiny_model_dir("bert-embedding")), "--task", "feature-extraction",
        "--calibration", str(calibration), "--max-quality-drop", "0.05", "--budget-seconds", "300",
        "-o", str(tmp_path / "out"), "--plot", str(tmp_path / "front.png"), "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{") :])
    report = data["report"]
    statuses = {c["label"]: c["status"] for c in report["candidates"]}
    assert list(statuses.values()).count("chosen") == 1
    assert any(label.startswith("onnxruntime") for label in statuses)
    assert any("int8-dynamic" in label for label in statuses)
    assert (tmp_path / "front.png").stat().st_size > 1000
    saved = aikit.Model.load(tmp_path / "out")
    assert saved.optimization_report["chosen"] == report["chosen"]


@pytest.mark.parametrize("objective", ["latency", "memory"])
def test_latency_and_memory_objectives_rank_by_their_own_figure(embedder: aikit.Model, objective: str) -> None:
    candidates = [
        aikit.Candidate(backend="torch", strategies=("int8-dynamic",)),
        aikit.Candidate(backend="onnxruntime"),
    ]
    model = embedder.optimize(
        calibration=TEXTS, max_quality_drop=0.05, objective=objective, candidates=candidates, progress=False
    )
    report = model.optimization_report
    assert report.objective == objective and report.chosen_result is not None
    built = [c for c in report.candidates if c.status in ("chosen", "within budget") and c.label != "torch (as loaded)"]
    assert built and all(c.latency_p50_s and c.latency_p50_s > 0 for c in built)
    if objective == "memory":
        assert all(c.memory_bytes is not None for c in built)
        if report.chosen != "torch (as loaded)":
            assert report.chosen_result.memory_bytes == min(c.memory_bytes or 0 for c in built)
    else:
        # latency: the chosen one has the highest speedup, which is measured on median single-input time
        best = max(report.candidates, key=lambda c: c.speedup or 0.0)
        assert report.chosen == best.label


def test_the_default_batch_size_is_measured_and_saved(embedder: aikit.Model, tmp_path: Path) -> None:
    candidates = [aikit.Candidate(backend="torch", strategies=("int8-dynamic",))]
    model = embedder.optimize(calibration=TEXTS, max_quality_drop=0.05, candidates=candidates, progress=False)
    report = model.optimization_report
    assert report.batch_size_chosen in (8, 16, 32)  # the task's 32, half and a quarter of it
    assert model.task.batch_size == report.batch_size_chosen
    assert any("batch size measured" in n for n in report.notes)
    assert embedder.task.batch_size == 32  # the original is untouched
    again = aikit.Model.load(model.save(tmp_path / "tuned"))
    assert again.task.batch_size == report.batch_size_chosen
    fixed = embedder.optimize(
        calibration=TEXTS, max_quality_drop=0.05, candidates=candidates, batch_size=4, progress=False
    )
    assert fixed.optimization_report.batch_size_chosen is None and fixed.task.batch_size == 32
