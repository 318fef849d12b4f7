"""``aikit bench MODEL [MODEL...]`` and ``aikit eval MODEL DATA``: speed, memory and quality."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aikit.cli._common import echo_json, split_list

if TYPE_CHECKING:
    from aikit.model.model import Model

_INTERRUPTED = 130  # the shell's code for "stopped by Ctrl-C"


def _load(spec: str, *, task: str | None, backend: str, dtype: str | None, threads: int | None) -> Model:
    """Load a model path, or a packaged default model by name (``minilm``, ``smollm2``)."""
    from aikit.defaults import DEFAULT_MODELS, DEFAULT_TASKS, default_model_path
    from aikit.model.model import Model

    source: Any = spec
    if spec in DEFAULT_MODELS and not Path(spec).exists():
        source = default_model_path(spec)
        task = task or DEFAULT_TASKS[spec]
    return Model.load(source, task=task, backend=backend, dtype=dtype, threads=threads)


def _batch_sizes(value: str) -> list[int]:
    from aikit.errors import ConfigError

    try:
        sizes = [int(v) for v in split_list(value)]
    except ValueError as exc:
        raise ConfigError(f"--batch-size takes comma-separated integers such as 1,8,32; got {value!r}") from exc
    if not sizes:
        raise ConfigError("--batch-size needs at least one integer")
    return sizes


def register(app: typer.Typer) -> None:
    @app.command()
    def bench(
        models: Annotated[
            list[str], typer.Argument(help="Model folders / files (or 'minilm', 'smollm2'); the first is the baseline.")
        ],
        input_file: Annotated[Path, typer.Option("--input", "-i", help="Inputs: .txt (one per line), .jsonl, .csv...")],
        batch_size: str = typer.Option("1,8,32", "--batch-size", "-b", help="Comma-separated batch sizes."),
        repeats: int = typer.Option(10, help="Timed runs per batch size."),
        warmup: int = typer.Option(1, help="Untimed runs per batch size first."),
        limit: int | None = typer.Option(None, help="Use only the first N inputs."),
        task: str | None = typer.Option(None, help="Task name (inferred when omitted)."),
        backend: str = typer.Option("auto", help="Backend for every model."),
        dtype: str | None = typer.Option(None, help="float32, bfloat16 or float16 for every model."),
        threads: int | None = typer.Option(None, help="Intra-op threads (default: every core)."),
        max_new_tokens: int = typer.Option(32, help="Generation only: tokens per prompt."),
        data: Annotated[Path | None, typer.Option(help="Labelled data to measure quality on (several models).")] = None,
        metric: str | None = typer.Option(None, help="Quality metric on --data (default: the task's first)."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
        plot: Annotated[Path | None, typer.Option(help="Write a plot (.png, .svg, .pdf).")] = None,
        progress: bool | None = typer.Option(
            None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."
        ),
    ) -> None:
        """Latency (p50/p90/p99), throughput, memory and size; several models give one table of
        ratios against the first, with quality, and --plot draws quality against speed."""
        from aikit.measure.comparison import compare
        from aikit.measure.eval_data import load_dataset
        from aikit.measure.reporting import check_plot_path

        sizes = _batch_sizes(batch_size)
        if plot is not None:
            check_plot_path(plot)  # fail before minutes of measuring, not after
        inputs = load_dataset(input_file, limit=limit).inputs
        loaded = [_load(m, task=task, backend=backend, dtype=dtype, threads=threads) for m in models]
        options: dict[str, Any] = {"max_new_tokens": max_new_tokens} if loaded[0].task.generative else {}
        if len(loaded) == 1:
            report: Any = loaded[0].benchmark(
                inputs, batch_sizes=sizes, repeats=repeats, warmup=warmup, progress=progress, **options
            )
        else:
            names = [_short_name(spec, m) for spec, m in zip(models, loaded, strict=True)]
            report = compare(
                loaded, inputs, names=names, batch_sizes=sizes, repeats=repeats, warmup=warmup,
                data=data, metric=metric, progress=progress, **options,
            )  # fmt: skip
        if json_out:
            echo_json(report.to_dict())
        else:
            typer.echo(report.render())
        if plot is not None and (report.batches if len(loaded) == 1 else report.batch_sizes):
            typer.echo(f"plot written to {report.plot(plot)}", err=True)
        if report.interrupted:
            typer.echo("interrupted: the figures above cover the runs finished before Ctrl-C", err=True)
            raise typer.Exit(_INTERRUPTED)

    @app.command("eval")
    def eval_command(
        model: str = typer.Argument(..., help="Model folder / file (or 'minilm', 'smollm2')."),
        data: str = typer.Argument(..., help="Data: .jsonl, .csv, .tsv, .json, a saved HF dataset folder, hf:NAME."),
        metric: str | None = typer.Option(
            None, "--metric", "-m", help="Comma-separated metrics (default: the task's)."
        ),
        reference: str | None = typer.Option(None, help="Reference model (for cosine_agreement)."),
        limit: int | None = typer.Option(None, help="Score only the first N records."),
        input_field: str | None = typer.Option(None, help="Input column (default: text, input, sentence...)."),
        reference_field: str | None = typer.Option(None, help="Reference column (default: label, target...)."),
        split: str | None = typer.Option(None, help="Split of a Hugging Face dataset."),
        batch_size: int | None = typer.Option(None, help="Batch size for predict."),
        task: str | None = typer.Option(None, help="Task name (inferred when omitted)."),
        backend: str = typer.Option("auto", help="Backend name, or 'auto'."),
        dtype: str | None = typer.Option(None, help="float32, bfloat16 or float16."),
        max_new_tokens: int = typer.Option(32, help="Generation only: tokens per prompt."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
        progress: bool | None = typer.Option(
            None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."
        ),
    ) -> None:
        """Score a model on a labelled dataset: accuracy, precision, recall, F1 (macro and per
        class), confusion matrix, exact match, perplexity, or cosine agreement with --reference."""
        loaded = _load(model, task=task, backend=backend, dtype=dtype, threads=None)
        ref = _load(reference, task=task, backend="auto", dtype=None, threads=None) if reference else None
        options: dict[str, Any] = {"max_new_tokens": max_new_tokens} if loaded.task.generative else {}
        report = loaded.evaluate(
            data, metrics=metric, reference=ref, limit=limit, input_field=input_field, reference_field=reference_field,
            split=split, batch_size=batch_size, progress=progress, **options,
        )  # fmt: skip
        if json_out:
            echo_json(report.to_dict())
        else:
            typer.echo(report.render())
        if report.interrupted:
            typer.echo(f"interrupted: scores cover the first {report.items} items", err=True)
            raise typer.Exit(_INTERRUPTED)


def _short_name(spec: str, model: Model) -> str:
    info = model.describe()
    return f"{Path(spec).name or spec} ({info.get('backend')}, {info.get('dtype', '?')})"
