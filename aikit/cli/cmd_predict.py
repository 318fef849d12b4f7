"""``aikit predict MODEL INPUT...``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from aikit.cli._common import echo_json


def register(app: typer.Typer) -> None:
    @app.command()
    def predict(
        model: str = typer.Argument(..., help="Model folder, artifact, .gguf/.onnx file or hub id."),
        inputs: list[str] = typer.Argument(..., help="Texts, or image paths for image tasks."),
        task: str | None = typer.Option(None, help="Task name (inferred when omitted)."),
        backend: str = typer.Option("auto", help="Backend name, or 'auto'."),
        max_new_tokens: int = typer.Option(64, help="Generation only: tokens to generate."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON results."),
    ) -> None:
        """Run a model on the given inputs and print one result per input."""
        from aikit.model.model import Model

        m = Model.load(model, task=task, backend=backend)
        items: list[object] = list(inputs)
        if m.task.input_kind == "image":
            items = [Path(p) for p in inputs]
        options: dict[str, Any] = {"max_new_tokens": max_new_tokens} if m.task.generative else {}
        results = m.predict(items, **options)
        if json_out:
            echo_json([r.to_dict() for r in results])
            return
        for item, r in zip(inputs, results, strict=True):
            typer.echo(f"{item!r}: {_short(r)}")


def _short(result: object) -> str:
    from aikit.contracts.results import Classification, Embedding, Generation, TokenTags

    if isinstance(result, Embedding):
        head = ", ".join(f"{x:.4f}" for x in result.vector[:4])
        return f"embedding[{len(result)}] = [{head}, ...]"
    if isinstance(result, Classification):
        return f"{result.label} ({result.score:.3f})"
    if isinstance(result, TokenTags):
        return ", ".join(f"{e.word}/{e.label}" for e in result.entities) or "(no entities)"
    if isinstance(result, Generation):
        return result.text
    return repr(result)
