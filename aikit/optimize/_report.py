"""``OptimizationReport``: every candidate ``Model.optimize`` considered, what it cost and why it lost.

Returned as ``model.optimization_report`` and stored in the artifact manifest (``to_dict``).
``str(report)`` is a plain table, ``rich.print(report)`` a rich one, ``report.plot(path)`` draws
the quality-vs-speed front.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from typing_extensions import override

__all__ = ["CandidateResult", "OptimizationReport"]

# Statuses a candidate ends in.
CHOSEN = "chosen"
WITHIN_BUDGET = "within budget"
REJECTED = "rejected"
NOT_TRIED = "not tried"


@dataclass
class CandidateResult:
    """One candidate's outcome.

    ``quality_drop`` is the task's bounded metric on the held-out inputs (``quality`` holds the
    details); ``speedup`` is the model as loaded's time / this candidate's time, timed side by side
    (interleaved) in this process. ``throughput`` is in ``OptimizationReport.throughput_unit`` at
    ``OptimizationReport.batch_size``; ``latency_p50_s`` is one input (generation: one new token).
    ``memory_bytes`` is how much the process's resident memory grew while the candidate was built
    and ran its first batch (approximate: allocators keep freed memory). ``reason`` says why a
    candidate was rejected or not tried.
    """

    label: str
    backend: str
    strategies: list[dict[str, Any]] = field(default_factory=list)
    status: str = NOT_TRIED
    reason: str | None = None
    note: str = ""
    quality: dict[str, float] = field(default_factory=dict)
    quality_drop: float | None = None
    size_bytes: int | None = None
    latency_p50_s: float | None = None
    throughput: float | None = None
    speedup: float | None = None
    memory_bytes: int | None = None
    build_seconds: float | None = None
    excluded_layers: list[str] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        """Whether this candidate got as far as timing (so it can be compared on speed)."""
        return self.speedup is not None


@dataclass
class OptimizationReport:
    """The search ``Model.optimize`` ran: settings, machine, every candidate, the choice.

    ``held_out`` describes the split quality was measured on; ``partial`` is true when the search
    stopped early (``budget_seconds`` reached or Ctrl-C) and ``stopped_because`` says why.
    ``batch_size_chosen`` is the batch size measured fastest for the chosen model (when
    ``optimize`` was not given one), which its ``predict`` then uses by default.
    """

    objective: str
    max_quality_drop: float
    quality_metric: str | None
    batch_size: int
    throughput_unit: str
    held_out: str
    machine: dict[str, Any]
    candidates: list[CandidateResult] = field(default_factory=list)
    chosen: str | None = None
    seconds: float = 0.0
    partial: bool = False
    stopped_because: str | None = None
    batch_size_chosen: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def chosen_result(self) -> CandidateResult | None:
        return next((c for c in self.candidates if c.status == CHOSEN), None)

    def pareto_front(self) -> list[CandidateResult]:
        """Measured candidates not beaten on both quality drop and speedup by another one."""
        points = [c for c in self.candidates if c.measured and c.quality_drop is not None]
        front = []
        for c in points:
            assert c.quality_drop is not None and c.speedup is not None
            beaten = any(
                o is not c
                and o.quality_drop is not None
                and o.speedup is not None
                and o.quality_drop <= c.quality_drop
                and o.speedup >= c.speedup
                and (o.quality_drop < c.quality_drop or o.speedup > c.speedup)
                for o in points
            )
            if not beaten:
                front.append(c)
        return sorted(front, key=lambda c: c.speedup or 0.0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return _finite(data)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ display
    def rows(self) -> list[list[str]]:
        """The table: one row per candidate, best first (chosen, then within budget by speed)."""
        order = {CHOSEN: 0, WITHIN_BUDGET: 1, REJECTED: 2, NOT_TRIED: 3}
        ranked = sorted(self.candidates, key=lambda c: (order.get(c.status, 4), -(c.speedup or 0.0)))
        out = []
        for c in ranked:
            out.append(
                [
                    c.label,
                    c.status,
                    _num(c.quality_drop, "{:.4f}"),
                    _num(c.speedup, "{:.2f}x"),
                    _num(c.throughput, "{:.1f}"),
                    _num(None if c.latency_p50_s is None else c.latency_p50_s * 1e3, "{:.2f}"),
                    _bytes(c.size_bytes),
                    _bytes(c.memory_bytes),
                    _num(c.build_seconds, "{:.1f}"),
                    c.reason or "",
                ]
            )
        return out

    def header(self) -> list[str]:
        return [
            "candidate",
            "status",
            "quality drop",
            "speedup",
            f"throughput ({self.throughput_unit}, batch {self.batch_size})",
            "p50 ms",
            "size",
            "memory",
            "build s",
            "why",
        ]

    def _title(self) -> str:
        cpu = self.machine.get("cpu", "?")
        flags = " ".join(self.machine.get("simd", []))
        return (
            f"optimize: objective={self.objective}, max_quality_drop={self.max_quality_drop} "
            f"({self.quality_metric or 'no quality metric'}); {cpu} [{flags}]"
            + (f"; PARTIAL: {self.stopped_because}" if self.partial else "")
        )

    @override
    def __str__(self) -> str:
        header, rows = self.header(), self.rows()
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = [self._title(), "  ".join(h.ljust(w) for h, w in zip(header, widths))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
        lines.append(f"held-out quality: {self.held_out}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __rich__(self) -> Any:
        from rich.table import Table

        table = Table(title=self._title(), caption=f"held-out quality: {self.held_out}")
        for name in self.header():
            table.add_column(name, overflow="fold")
        for row in self.rows():
            style = "bold green" if row[1] == CHOSEN else ("dim" if row[1] in (REJECTED, NOT_TRIED) else None)
            table.add_row(*row, style=style)
        return table

    def plot(self, path: str | Path) -> Path:
        """Draw quality drop vs speedup for every measured candidate, the front joined, to ``path`` (PNG/SVG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        points = [c for c in self.candidates if c.measured and c.quality_drop is not None]
        fig, ax = plt.subplots(figsize=(8, 5))
        try:
            for c in points:
                within = c.status in (CHOSEN, WITHIN_BUDGET)
                ax.scatter(
                    c.speedup or 0.0,
                    c.quality_drop or 0.0,
                    marker="*" if c.status == CHOSEN else "o",
                    s=160 if c.status == CHOSEN else 40,
                    color="tab:green" if within else "tab:red",
                )
                ax.annotate(c.label, (c.speedup or 0.0, c.quality_drop or 0.0), fontsize=7, alpha=0.8)
            front = self.pareto_front()
            if len(front) > 1:
                ax.plot(
                    [c.speedup or 0.0 for c in front], [c.quality_drop or 0.0 for c in front], "--", color="gray", lw=1
                )
            ax.axhline(
                self.max_quality_drop, color="tab:orange", lw=1, label=f"max_quality_drop={self.max_quality_drop}"
            )
            ax.set_xlabel("speedup vs the model as loaded (higher is better)")
            ax.set_ylabel(f"quality drop: {self.quality_metric or '?'} (lower is better)")
            ax.set_title(f"optimize ({self.objective}): {self.machine.get('cpu', '')}", fontsize=9)
            ax.legend(fontsize=8)
            out = Path(path)
            fig.tight_layout()
            fig.savefig(out, dpi=120)
        finally:
            plt.close(fig)
        return out


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None or not math.isfinite(value) else fmt.format(value)


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.1f} MB"


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: turn them into None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
