"""``aikit optimize MODEL --calibration texts.txt --max-quality-drop 0.01 -o OUT [--plot pareto.png]``."""

from __future__ import annotations

from pathlib import Path

import typer

from aikit.cli._common import echo_json
from aikit.cli.cmd_compress import read_calibration


def register(app: typer.Typer) -> None:
    @app.command()
    def optimize(
        model: str = typer.Argument(..., help="Model folder, artifact, .gguf / .onnx file or hub id."),
        calibration: Path = typer.Option(
            ...,
            help="Real inputs: one text per line, a .json list or .jsonl (image tasks: image paths). "
            "Every 4th is held out to measure quality.",
        ),
        output: Path | None = typer.Option(None, "--output", "-o", help="Folder to save the chosen model to."),
        max_quality_drop: float = typer.Option(0.01, help="Largest quality drop allowed (the task's measure)."),
        objective: str = typer.Option("throughput", help="throughput, latency, size or memory."),
        batch_size: int | None = typer.Option(
            None, help="Batch size throughput is measured at (default: the task's, and the best batch is measured)."
        ),
        budget_seconds: float = typer.Option(600.0, help="Stop trying new candidates after this many seconds."),
        task: str | None = typer.Option(None, help="Task name (inferred when omitted)."),
        plot: Path | None = typer.Option(None, help="Draw the quality-vs-speed front to this PNG/SVG file."),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON instead of a table."),
    ) -> None:
        """Find the fastest variant of a model on this machine within a quality budget; save it."""
        from aikit.model.model import Model

        items = read_calibration(calibration)
        loaded = Model.load(model, task=task)
        if loaded.task.input_kind == "image":
            items = [Path(p) for p in items]
        best = loaded.optimize(
            calibration=items,
            max_quality_drop=max_quality_drop,
            objective=objective,
            batch_size=batch_size,
            budget_seconds=budget_seconds,
            progress=None if not json_out else False,
        )
        report = best.optimization_report
        path = best.save(output) if output is not None else None
        drawn = report.plot(plot) if plot is not None else None
        if json_out:
            echo_json(
                {
                    "output": str(path) if path else None,
                    "plot": str(drawn) if drawn else None,
                    "report": report.to_dict(),
                }
            )
            return
        from rich.console import Console

        Console().print(report)
        typer.echo(f"chosen: {report.chosen}")
        if path is not None:
            typer.echo(f"saved to {path}")
        if drawn is not None:
            typer.echo(f"plot: {drawn}")
