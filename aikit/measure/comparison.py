"""``compare``: variants of a model (original, compressed, other backends) side by side.

Every model is benchmarked on the same inputs in this one process, one after another, and its
quality is measured against the first model (the baseline): by default how closely its outputs
agree with the baseline's on the inputs (mean cosine of embeddings, share of equal labels or
texts), or a metric on a labelled dataset (``data=``). Speed and size are reported as ratios
against the baseline, since absolute times depend on the machine.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from typing_extensions import override

from aikit.contracts.results import Classification, Embedding
from aikit.errors import ConfigError, InputError
from aikit.measure.benchmark import benchmark
from aikit.measure.benchmark_report import BatchResult, BenchmarkReport
from aikit.measure.evaluate import comparable_output
from aikit.measure.reporting import format_bytes, pyplot, render_text, save_figure
from aikit.numerics import cosine_rows

if TYPE_CHECKING:
    from aikit.measure.eval_data import Dataset
    from aikit.model.model import Model

__all__ = ["ComparisonReport", "agreement", "compare", "pareto_front"]
logger = logging.getLogger("aikit.comparison")


def agreement(baseline: Sequence[Any], results: Sequence[Any]) -> float:
    """How closely ``results`` match ``baseline`` item by item, in [0, 1] (cosine in [-1, 1]).

    Embeddings: mean cosine similarity. Labels, texts and entity spans: the share that are equal.
    """
    if len(baseline) != len(results) or not results:
        raise InputError(
            f"agreement needs two equally long, non-empty result lists; got {len(baseline)} and {len(results)}"
        )
    first = results[0]
    if isinstance(first, Embedding):
        a = np.stack([r.vector for r in baseline]).astype(np.float64)
        b = np.stack([r.vector for r in results]).astype(np.float64)
        return float(cosine_rows(a, b).mean())
    same = sum(comparable_output(x) == comparable_output(y) for x, y in zip(baseline, results, strict=True))
    return float(same) / len(results)


def _agreement_name(result: Any) -> str:
    if isinstance(result, Embedding):
        return "cosine vs baseline"
    if isinstance(result, Classification):
        return "same label as baseline"
    return "same output as baseline"


def pareto_front(points: Sequence[tuple[float, float | None]]) -> list[bool]:
    """For ``(speed, quality)`` points, whether each is Pareto-best: no other point is at least as
    fast and at least as good while strictly better in one (missing quality counts as worst)."""
    values = [(s, -np.inf if q is None else q) for s, q in points]
    return [
        not any(s2 >= s and q2 >= q and (s2 > s or q2 > q) for j, (s2, q2) in enumerate(values) if j != i)
        for i, (s, q) in enumerate(values)
    ]


@dataclass(kw_only=True)
class ComparisonReport:
    """Benchmarks of several models plus a quality number each; the first model is the baseline."""

    reports: list[BenchmarkReport]
    quality: list[float | None]
    quality_metric: str
    interrupted: bool = False
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_sizes(self) -> list[int]:
        return sorted({b.batch_size for r in self.reports for b in r.batches})

    def rows(self) -> list[dict[str, Any]]:
        """One dict per (batch size, model): absolute figures and ratios against the baseline."""
        base = self.reports[0]
        out: list[dict[str, Any]] = []
        for size in self.batch_sizes:
            entries = [(r, q, r.batch(size)) for r, q in zip(self.reports, self.quality, strict=True)]
            measured = [(r, q, b) for r, q, b in entries if b is not None]
            front = pareto_front([(b.items_per_s, q) for _, q, b in measured])
            base_batch = base.batch(size)
            for (report, quality, batch), best in zip(measured, front, strict=True):
                out.append(_row(report, quality, batch, best, base, base_batch))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "quality_metric": self.quality_metric,
            "rows": self.rows(),
            "reports": [r.to_dict() for r in self.reports],
            "settings": self.settings,
            "interrupted": self.interrupted,
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **{"indent": 2, **kwargs})

    def table(self) -> Any:
        """A ``rich.table.Table``: one row per model and batch size; ``*`` marks the Pareto-best."""
        from rich.table import Table

        title = f"baseline: {self.reports[0].name}; quality: {self.quality_metric}"
        title += " [interrupted]" if self.interrupted else ""
        table = Table(title=title, title_justify="left")
        for column in ("model", "batch", "p50 ms", "items/s", "speed", "size", "size ratio", "quality", "pareto"):
            table.add_column(column, justify="left" if column == "model" else "right")
        for row in self.rows():
            quality = row["quality"]
            table.add_row(
                row["name"], str(row["batch_size"]), f"{row['p50_ms']:.1f}", f"{row['items_per_s']:.1f}",
                _ratio(row["speedup"]), format_bytes(row["size_bytes"]), _ratio(row["size_ratio"]),
                "-" if quality is None else f"{quality:.4f}", "*" if row["pareto"] else "",
            )  # fmt: skip
        return table

    def render(self, width: int = 120) -> str:
        mc = self.reports[0].machine
        versions = self.reports[0].versions
        note = f"machine: {mc.get('cpu', '?')} x{mc.get('cores', '?')}; " + ", ".join(
            f"{k} {v}" for k, v in versions.items() if k in ("python", "aikit", "torch", "onnxruntime")
        )
        return render_text(self.table(), note, width=width)

    @override
    def __str__(self) -> str:
        return self.render()

    def plot(self, path: str | os.PathLike[str], *, batch_size: int | None = None) -> Path:
        """Quality against throughput at ``batch_size`` (default: the largest measured), with the
        Pareto-best variants in colour and joined by a line. PNG, SVG or PDF by the suffix."""
        sizes = self.batch_sizes
        if not sizes:
            raise ConfigError("nothing to plot: no model finished a timed run")
        size = batch_size if batch_size is not None else sizes[-1]
        rows = [r for r in self.rows() if r["batch_size"] == size]
        if not rows:
            raise ConfigError(f"batch size {size} was not measured; measured: {', '.join(map(str, sizes))}")
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        ys = [r["quality"] if r["quality"] is not None else float("nan") for r in rows]
        for row, y in zip(rows, ys, strict=True):
            style = {"color": "tab:red", "s": 80, "zorder": 3} if row["pareto"] else {"color": "tab:gray", "s": 40}
            ax.scatter([row["items_per_s"]], [y], **style)
            ax.annotate(row["name"], (row["items_per_s"], y), textcoords="offset points", xytext=(6, 4), fontsize=8)
        front = sorted((r["items_per_s"], y) for r, y in zip(rows, ys, strict=True) if r["pareto"])
        if len(front) > 1:
            ax.plot([p[0] for p in front], [p[1] for p in front], "--", color="tab:red", label="Pareto front")
            ax.legend(loc="lower left")
        ax.set_xlabel(f"throughput at batch size {size} (items/s, higher is better)")
        ax.set_ylabel(f"{self.quality_metric} (higher is better)")
        ax.set_title("quality vs speed")
        ax.grid(alpha=0.3)
        return save_figure(fig, path)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _row(
    report: BenchmarkReport,
    quality: float | None,
    batch: BatchResult,
    pareto: bool,
    base: BenchmarkReport,
    base_batch: BatchResult | None,
) -> dict[str, Any]:
    size, base_size = report.model_size_bytes, base.model_size_bytes
    return {
        "name": report.name,
        "batch_size": batch.batch_size,
        "p50_ms": batch.latency.p50_s * 1e3,
        "p90_ms": batch.latency.p90_s * 1e3,
        "items_per_s": batch.items_per_s,
        "tokens_per_s": batch.tokens_per_s,
        "speedup": batch.items_per_s / base_batch.items_per_s if base_batch else None,
        "latency_ratio": batch.latency.p50_s / base_batch.latency.p50_s if base_batch else None,
        "size_bytes": size,
        "size_ratio": size / base_size if size and base_size else None,
        "extra_rss_bytes": (report.peak_rss_bytes or 0) - (report.rss_before_bytes or 0)
        if report.peak_rss_bytes is not None
        else None,
        "quality": quality,
        "pareto": pareto,
    }


def _dataset_quality(
    model: Model, baseline: Model, data: Dataset | str | os.PathLike[str], metric: str | None, options: dict[str, Any]
) -> tuple[float | None, str]:
    from aikit.measure.evaluate import evaluate

    report = evaluate(
        model, data, metrics=None if metric is None else [metric], reference=baseline, progress=False, **options
    )
    chosen = metric or next(iter(report.scores), "")
    return report.score(chosen), chosen


def compare(
    models: Sequence[Model],
    inputs: Sequence[Any],
    *,
    names: Sequence[str] | None = None,
    batch_sizes: Sequence[int] = (8,),
    warmup: int = 1,
    repeats: int = 5,
    data: Dataset | str | os.PathLike[str] | None = None,
    metric: str | None = None,
    plot: str | os.PathLike[str] | None = None,
    measure_size: bool = True,
    progress: bool | None = None,
    timer: Callable[[], float] = time.perf_counter,
    **predict_options: Any,
) -> ComparisonReport:
    """Benchmark ``models`` on ``inputs`` and measure each one's quality against the first.

    ``names`` label the rows (default: each source's folder name). Quality is agreement with the
    first model's outputs on ``inputs``, or ``metric`` on the labelled dataset ``data`` (for
    embeddings, ``cosine_agreement`` against the first model). ``plot`` writes the
    quality-vs-speed figure. Ctrl-C stops at once and returns what was measured. Other arguments
    are ``benchmark``'s.
    """
    models = list(models)
    items = list(inputs)
    if not models:
        raise ConfigError("compare needs at least one model")
    if names is not None and len(names) != len(models):
        raise ConfigError(f"{len(names)} names for {len(models)} models")
    labels = list(names) if names is not None else _default_names(models)
    tasks = {m.task.name for m in models}
    if len(tasks) > 1:
        raise ConfigError(f"compare needs models of one task; got {', '.join(sorted(tasks))}")
    reports: list[BenchmarkReport] = []
    quality: list[float | None] = []
    quality_metric = metric or "quality"
    interrupted = False
    score: float | None
    baseline_results: list[Any] | None = None
    for model, label in zip(models, labels, strict=True):
        report = benchmark(
            model, items, batch_sizes=batch_sizes, warmup=warmup, repeats=repeats, name=label,
            measure_size=measure_size, progress=progress, timer=timer, **predict_options,
        )  # fmt: skip
        reports.append(report)
        if report.interrupted:
            quality.append(None)
            interrupted = True
            break
        try:
            if data is None:
                results = model.predict(items, progress=False, **predict_options)
                baseline_results = results if baseline_results is None else baseline_results
                score, quality_metric = agreement(baseline_results, results), _agreement_name(results[0])
            else:
                score, quality_metric = _dataset_quality(model, models[0], data, metric, predict_options)
        except KeyboardInterrupt:
            quality.append(None)
            interrupted = True
            break
        quality.append(score)
    comparison = ComparisonReport(
        reports=reports,
        quality=quality,
        quality_metric=quality_metric,
        interrupted=interrupted,
        settings={"batch_sizes": list(batch_sizes), "warmup": warmup, "repeats": repeats, "inputs": len(items)},
    )
    if plot is not None and comparison.batch_sizes:
        comparison.plot(plot)
    return comparison


def _default_names(models: list[Model]) -> list[str]:
    names: list[str] = []
    for model in models:
        info = model.describe()
        base = Path(model.parts.source.location).name or model.task.name
        name = f"{base} ({info.get('backend')}, {info.get('dtype', '?')})"
        if model.transformations:
            name += " " + "+".join(str(t.get("strategy", t.get("name", "?"))) for t in model.transformations)
        while name in names:
            name += "'"
        names.append(name)
    return names
