"""``CompressionReport``: what a ``Model.compress`` call cost in size, quality and speed.

Returned as ``model.compression_report``, stored in the artifact manifest (``to_dict``), printed
as a plain table by ``str(report)`` and as a rich table in a terminal (``rich.print(report)``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from typing_extensions import override

__all__ = ["CompressionReport", "LayerChange"]


@dataclass
class LayerChange:
    """One layer that a strategy changed.

    ``error``: relative weight reconstruction error ``||W - W'|| / ||W||`` (None when the shape
    changed); ``sparsity``: fraction of zero weights afterwards; ``kept``: fraction of the
    layer's weights that remain (below 1 when structured pruning shrank it, 0 when removed).
    """

    name: str
    kind: str
    error: float | None
    sparsity: float
    kept: float


def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{n} B"  # pragma: no cover - loop always returns


@dataclass
class CompressionReport:
    """Size, parameters, per-layer error, quality and speed of a compressed model vs its original.

    ``quality`` holds task-specific metrics measured on held-out calibration inputs
    (feature-extraction: ``cosine_min`` / ``cosine_mean``; classification: ``label_agreement``;
    generation: ``perplexity_before`` / ``perplexity_after`` / ``next_token_agreement``) and
    ``quality_drop`` the single number ``max_quality_drop`` bounds (see ``aikit.compress.chain``).
    ``speedup`` is original time / compressed time on this machine (below 1: slower).
    """

    strategies: list[dict[str, Any]]
    task: str
    backend: str
    size_before_bytes: int
    size_after_bytes: int
    parameters_before: int
    parameters_after: int
    layers: list[LayerChange] = field(default_factory=list)
    excluded_layers: list[str] = field(default_factory=list)
    quality: dict[str, float] = field(default_factory=dict)
    quality_metric: str | None = None
    quality_drop: float | None = None
    max_quality_drop: float | None = None
    evaluated_items: int = 0
    latency_before_s: float | None = None
    latency_after_s: float | None = None
    speedup: float | None = None
    throughput_unit: str = "items/s"
    throughput_before: float | None = None
    throughput_after: float | None = None
    slower: bool = False
    slower_reason: str | None = None
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def size_ratio(self) -> float:
        """Compressed size / original size (0.25 = four times smaller)."""
        return self.size_after_bytes / self.size_before_bytes if self.size_before_bytes else 1.0

    @property
    def parameters_kept(self) -> float:
        """Fraction of non-zero weights that remain."""
        return self.parameters_after / self.parameters_before if self.parameters_before else 1.0

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (stored in the artifact manifest)."""
        data = asdict(self)
        data["size_ratio"] = round(self.size_ratio, 6)
        data["parameters_kept"] = round(self.parameters_kept, 6)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompressionReport:
        """Rebuild a report from ``to_dict`` output (derived fields are ignored)."""
        fields = {k: v for k, v in data.items() if k not in ("size_ratio", "parameters_kept")}
        fields["layers"] = [LayerChange(**layer) for layer in fields.get("layers", [])]
        return cls(**fields)

    # ------------------------------------------------------------------ display
    def rows(self) -> list[tuple[str, str]]:
        """(label, value) rows of the summary table."""
        names = " -> ".join(s.get("strategy", "?") for s in self.strategies)
        rows = [
            ("strategies", names),
            (
                "size",
                f"{_human_bytes(self.size_before_bytes)} -> {_human_bytes(self.size_after_bytes)} "
                f"({self.size_ratio:.1%})",
            ),
            (
                "parameters kept",
                f"{self.parameters_after:,} of {self.parameters_before:,} ({self.parameters_kept:.1%})",
            ),
        ]
        if self.quality:
            shown = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in self.quality.items())
            rows.append((f"quality ({self.evaluated_items} items)", shown))
        else:
            rows.append(("quality", "not measured (pass calibration=[...])"))
        if self.quality_drop is not None:
            bound = f" (bound {self.max_quality_drop})" if self.max_quality_drop is not None else ""
            rows.append((f"quality drop [{self.quality_metric}]", f"{self.quality_drop:.4f}{bound}"))
        if self.excluded_layers:
            rows.append(("kept in full precision", ", ".join(self.excluded_layers)))
        if self.speedup is not None:
            verdict = "SLOWER" if self.slower else "faster" if self.speedup >= 1 else "about the same"
            rows.append(
                (
                    "speed",
                    f"{self.speedup:.2f}x ({verdict}): {self.throughput_before:.1f} -> "
                    f"{self.throughput_after:.1f} {self.throughput_unit}",
                )
            )
        else:
            rows.append(("speed", "not measured"))
        if self.slower_reason:
            rows.append(("why slower", self.slower_reason))
        worst = sorted((la for la in self.layers if la.error is not None), key=lambda la: -(la.error or 0.0))[:5]
        if worst:
            rows.append(("largest layer errors", ", ".join(f"{la.name} {la.error:.4f}" for la in worst)))
        shrunk = [la for la in self.layers if la.kept < 1.0]
        if shrunk:
            rows.append(("layers shrunk/removed", f"{len(shrunk)} (e.g. {shrunk[0].name} kept {shrunk[0].kept:.0%})"))
        rows.extend(("note", n) for n in self.notes)
        return rows

    @override
    def __str__(self) -> str:
        rows = self.rows()
        width = max(len(label) for label, _ in rows)
        lines = ["Compression report", "-" * (width + 2 + 60)]
        lines += [f"{label.ljust(width)}  {value}" for label, value in rows]
        return "\n".join(lines)

    def __rich__(self) -> Any:
        from rich.table import Table

        table = Table(title="Compression report", show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        for label, value in self.rows():
            style = "bold red" if label in ("why slower",) or (label == "speed" and self.slower) else None
            table.add_row(label, value, style=style)
        return table
