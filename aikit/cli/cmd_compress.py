"""``aikit compress MODEL --strategy int8-dynamic [--strategy prune-structured:ffn=0.3] -o OUT``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from aikit.cli._common import echo_json
from aikit.errors import ConfigError


def read_calibration(path: Path) -> list[Any]:
    """Calibration inputs from a file: a JSON list, JSON lines, or one text per line (blank lines skipped)."""
    if not path.is_file():
        raise ConfigError(f"calibration file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"calibration file {path} is not valid JSON: {exc}") from exc
        if not isinstance(items, list):
            raise ConfigError(f"calibration file {path} must hold a JSON list of inputs")
        return items
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return [line.strip() for line in text.splitlines() if line.strip()]


def register(app: typer.Typer) -> None:
    @app.command()
    def compress(
        model: str = typer.Argument(..., help="Model folder, artifact, .gguf file or hub id."),
        strategy: list[str] = typer.Option(
            ...,
            "--strategy",
            "-s",
            help="Strategy shorthand, e.g. int8-dynamic or prune-structured:ffn=0.3 (repeat to chain).",
        ),
        output: Path = typer.Option(..., "--output", "-o", help="Folder to write the compressed artifact to."),
        calibration: Path | None = typer.Option(
            None, help="Calibration inputs: one text per line, a .json list or .jsonl (image tasks: image paths)."
        ),
        max_quality_drop: float | None = typer.Option(
            None, help="Accuracy guard bound (e.g. 0.01); needs --calibration."
        ),
        task: str | None = typer.Option(None, help="Task name (inferred when omitted)."),
        backend: str | None = typer.Option(
            None, help="Backend to load the model on (default: one that every --strategy declares it runs on)."
        ),
        speed: bool = typer.Option(True, "--speed/--no-speed", help="Time the compressed model against the original."),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON instead of a table."),
    ) -> None:
        """Compress a model with one or more strategies, save it, and print what it cost."""
        from aikit.compress.chain import backend_for
        from aikit.model.model import Model

        items = read_calibration(calibration) if calibration is not None else None
        loaded = Model.load(model, task=task, backend=backend or backend_for(strategy))
        if items is not None and loaded.task.input_kind == "image":
            items = [Path(p) for p in items]
        small = loaded.compress(
            *strategy, calibration=items, max_quality_drop=max_quality_drop, measure_speed=speed, progress=not json_out
        )
        path = small.save(output)
        report = small.compression_report
        if json_out:
            echo_json({"output": str(path), "report": report.to_dict()})
            return
        from rich.console import Console

        Console().print(report)
        typer.echo(f"saved to {path}")
