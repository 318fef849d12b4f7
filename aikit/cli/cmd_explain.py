"""``aikit explain MODEL INPUT... --html out.html --png out.png``."""

from __future__ import annotations

from pathlib import Path

import typer

from aikit.cli._common import echo_json


def register(app: typer.Typer) -> None:
    @app.command()
    def explain(
        model: str = typer.Argument(..., help="Model folder, artifact, .keras/.onnx file or hub id."),
        inputs: list[str] = typer.Argument(
            ..., help="Texts, image paths for image tasks, or text pairs (A B A B ...) for embedding models."
        ),
        task: str | None = typer.Option(None, help="Task name (inferred when omitted)."),
        backend: str = typer.Option("auto", help="Backend name, or 'auto'."),
        method: str | None = typer.Option(
            None, help="Explainer: integrated-gradients, occlusion, or a plugin's (default: by backend)."
        ),
        target: str | None = typer.Option(None, help="Label to explain (default: the predicted one)."),
        steps: int = typer.Option(32, help="Integrated gradients: interpolation steps."),
        html: Path | None = typer.Option(None, "--html", help="Write every explanation to this HTML page."),
        png: Path | None = typer.Option(
            None, "--png", help="Write a PNG picture (the first input's; more inputs add -1, -2... to the name)."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the attributions as JSON."),
    ) -> None:
        """Show which tokens or pixels a classifier's prediction depends on, or which token pairs drive the
        similarity of two texts under an embedding model."""
        from aikit.measure.explain import write_html
        from aikit.model.model import Model

        m = Model.load(model, task=task, backend=backend)
        items: list[object] = list(inputs)
        if m.task.input_kind == "image":
            items = [Path(p) for p in inputs]
        if m.task.explain_input == "pair":  # an embedding model explains the similarity of two texts
            if len(inputs) % 2:
                raise typer.BadParameter("an embedding model explains pairs of texts: give an even number of texts")
            pairs = [(inputs[i], inputs[i + 1]) for i in range(0, len(inputs), 2)]
            items = list(pairs)
            inputs = [f"{a!r} / {b!r}" for a, b in pairs]
        explanations = m.explain(items, method=method, target=target, steps=steps)
        if html is not None:
            write_html(explanations, html)
        if png is not None:
            for i, e in enumerate(explanations):
                e.to_png(png if i == 0 else png.with_name(f"{png.stem}-{i}{png.suffix}"))
        if json_out:
            echo_json([e.to_dict() for e in explanations])
            return
        for item, e in zip(inputs, explanations, strict=True):
            tops = ", ".join(f"{name} {score:+.3f}" for name, score in e.top(5))
            typer.echo(f"{item!r}: {e.target} (p={e.probability:.3f}) via {e.method}; top: {tops}")
