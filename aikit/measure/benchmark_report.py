"""What ``Model.benchmark`` measures: latency statistics per batch size, streaming latency for
generation, memory, size, and the machine it ran on. Readable as a table, JSON or a plot."""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from typing_extensions import override

from aikit.errors import ConfigError
from aikit.measure.reporting import format_bytes, pyplot, render_text, save_figure

__all__ = ["BatchResult", "BenchmarkReport", "LatencyStats", "StreamingResult", "percentile"]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolating linearly between closest ranks.

    This is numpy's default method: with ``n`` sorted values the percentile sits at rank
    ``(n - 1) * q / 100``. With few runs, p99 is close to the slowest run.
    """
    if not values:
        raise ConfigError("percentile of no values: run at least once")
    if not 0 <= q <= 100:
        raise ConfigError(f"percentile q must lie in [0, 100], got {q!r}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, kw_only=True)
class LatencyStats:
    """Summary of repeated timings, in seconds."""

    count: int
    mean_s: float
    stdev_s: float
    min_s: float
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float

    @classmethod
    def from_samples(cls, samples: Sequence[float]) -> LatencyStats:
        """Statistics of ``samples`` (at least one); ``stdev_s`` is 0 for a single sample."""
        if not samples:
            raise ConfigError("latency statistics need at least one timed run")
        return cls(
            count=len(samples),
            mean_s=statistics.fmean(samples),
            stdev_s=statistics.stdev(samples) if len(samples) > 1 else 0.0,
            min_s=min(samples),
            p50_s=percentile(samples, 50),
            p90_s=percentile(samples, 90),
            p99_s=percentile(samples, 99),
            max_s=max(samples),
        )


@dataclass(frozen=True, kw_only=True)
class BatchResult:
    """Timed calls of ``predict`` on ``batch_size`` items at a time.

    ``latency`` is per call (one batch). Throughput is total items (tokens) over total timed
    seconds. ``tokens`` counts input tokens for encoders and generated tokens for generation;
    it is None when the task has no tokens (images).
    """

    batch_size: int
    latency: LatencyStats
    items: int
    seconds: float
    tokens: int | None = None

    @property
    def items_per_s(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else math.inf

    @property
    def tokens_per_s(self) -> float | None:
        if self.tokens is None:
            return None
        return self.tokens / self.seconds if self.seconds > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "runs": self.latency.count,
            "items": self.items,
            "seconds": self.seconds,
            "tokens": self.tokens,
            "items_per_s": self.items_per_s,
            "tokens_per_s": self.tokens_per_s,
            "latency": asdict(self.latency),
        }


@dataclass(frozen=True, kw_only=True)
class StreamingResult:
    """Generation measured through ``Model.stream`` one prompt at a time.

    ``time_to_first_token`` runs from the call to the first text piece; ``time_per_output_token``
    is the remaining time over the remaining tokens (the generated text re-tokenised).
    """

    time_to_first_token: LatencyStats
    time_per_output_token: LatencyStats | None
    output_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "time_to_first_token": asdict(self.time_to_first_token),
            "time_per_output_token": asdict(self.time_per_output_token) if self.time_per_output_token else None,
            "output_tokens": self.output_tokens,
        }


@dataclass(kw_only=True)
class BenchmarkReport:
    """Everything one ``benchmark`` call measured. ``interrupted`` is true after Ctrl-C: the
    report then holds the runs finished before it.

    ``peak_rss_bytes`` is the process's resident memory at its highest while the runs went on
    (sampled), ``rss_before_bytes`` what it was just before them: their difference is the
    working memory the runs needed on top of the loaded weights.
    """

    name: str
    task: str
    model: dict[str, Any]
    batches: list[BatchResult] = field(default_factory=list)
    streaming: StreamingResult | None = None
    rss_before_bytes: int | None = None
    peak_rss_bytes: int | None = None
    model_size_bytes: int | None = None
    size_method: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False

    def batch(self, batch_size: int) -> BatchResult | None:
        """The result for ``batch_size``, or None when it was not measured."""
        return next((b for b in self.batches if b.batch_size == batch_size), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (``json.dumps`` works on the result)."""
        return {
            "name": self.name,
            "task": self.task,
            "model": self.model,
            "batches": [b.to_dict() for b in self.batches],
            "streaming": self.streaming.to_dict() if self.streaming else None,
            "rss_before_bytes": self.rss_before_bytes,
            "peak_rss_bytes": self.peak_rss_bytes,
            "model_size_bytes": self.model_size_bytes,
            "size_method": self.size_method,
            "settings": self.settings,
            "machine": self.machine,
            "versions": self.versions,
            "interrupted": self.interrupted,
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **{"indent": 2, **kwargs})

    def table(self) -> Any:
        """A ``rich.table.Table`` with one row per batch size (times in milliseconds)."""
        from rich.table import Table

        m = self.model
        where = f"{m.get('device', '?')}, {m.get('dtype', '?')}, threads {m.get('threads', '?')}"
        title = f"{self.name}: {self.task} on {m.get('backend')} ({where})"
        title += " [interrupted]" if self.interrupted else ""
        table = Table(title=title, title_justify="left")
        for column in ("batch", "runs", "p50 ms", "p90 ms", "p99 ms", "items/s", "tokens/s"):
            table.add_column(column, justify="right")
        for b in self.batches:
            lat = b.latency
            tps = b.tokens_per_s
            table.add_row(
                str(b.batch_size),
                str(lat.count),
                f"{lat.p50_s * 1e3:.1f}",
                f"{lat.p90_s * 1e3:.1f}",
                f"{lat.p99_s * 1e3:.1f}",
                f"{b.items_per_s:.1f}",
                "-" if tps is None else f"{tps:.0f}",
            )
        return table

    def notes(self) -> str:
        """Size, memory, streaming latency and machine, as lines of text printed under the table."""
        lines = [
            f"model size {format_bytes(self.model_size_bytes)}"
            f" ({self.size_method or 'not measured'}), peak RSS {format_bytes(self.peak_rss_bytes)}"
            f" (before runs {format_bytes(self.rss_before_bytes)})"
        ]
        if self.streaming:
            ttft = self.streaming.time_to_first_token.p50_s * 1e3
            tpot = self.streaming.time_per_output_token
            lines.append(
                f"streaming: time to first token p50 {ttft:.1f} ms"
                + (f", time per output token p50 {tpot.p50_s * 1e3:.1f} ms" if tpot else "")
            )
        mc = self.machine
        lines.append(
            f"machine: {mc.get('cpu', '?')} x{mc.get('cores', '?')}, Python {mc.get('python', '?')}, "
            + ", ".join(f"{k} {v}" for k, v in self.versions.items() if k in ("aikit", "torch", "onnxruntime"))
        )
        return "\n".join(lines)

    def render(self, width: int = 120) -> str:
        """The table and its notes as plain text."""
        return render_text(self.table(), self.notes(), width=width)

    @override
    def __str__(self) -> str:
        return self.render()

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Throughput and p50 latency against batch size, written to a PNG / SVG / PDF file."""
        if not self.batches:
            raise ConfigError("nothing to plot: the benchmark finished no timed run")
        plt = pyplot()
        sizes = [b.batch_size for b in self.batches]
        fig, left = plt.subplots(figsize=(6, 4))
        left.plot(sizes, [b.items_per_s for b in self.batches], "o-", color="tab:blue", label="items/s")
        left.set_xlabel("batch size")
        left.set_ylabel("items / s", color="tab:blue")
        left.set_xscale("log", base=2)
        left.set_xticks(sizes, [str(s) for s in sizes])
        right = left.twinx()
        right.plot(sizes, [b.latency.p50_s * 1e3 for b in self.batches], "s--", color="tab:red", label="p50 latency")
        right.set_ylabel("p50 latency per batch (ms)", color="tab:red")
        left.set_title(f"{self.name} ({self.model.get('backend')}, {self.model.get('dtype', '?')})")
        return save_figure(fig, path)
