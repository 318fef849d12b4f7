"""``aikit demo``: the offline demo on the packaged default models."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        llm: bool = typer.Option(True, "--llm/--no-llm", help="Also run the SmolLM2 chat step."),
        max_new_tokens: int = typer.Option(32, help="Tokens for the chat answer."),
        optimize_seconds: float = typer.Option(
            120.0, help="Seconds of optimize() search per model: no candidate starts after them (0: skip the search)."
        ),
    ) -> None:
        """Semantic search with all-MiniLM-L6-v2 and a chat answer from SmolLM2, fully offline."""
        import time

        from aikit.cli.demo import run_demo

        t0 = time.perf_counter()
        run_demo(
            llm=llm,
            echo=typer.echo,
            max_new_tokens=max_new_tokens,
            optimize_seconds=optimize_seconds if optimize_seconds > 0 else None,
        )
        typer.echo(f"demo finished in {time.perf_counter() - t0:.1f}s, offline")
