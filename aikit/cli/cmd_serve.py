"""``aikit serve MODEL`` (HTTP service) and ``aikit batch MODEL`` (offline batch inference)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        model: str = typer.Argument(..., help="Model folder, aikit artifact, .gguf/.onnx file or hub id in the cache."),
        port: int = typer.Option(8000, help="TCP port."),
        host: str = typer.Option("127.0.0.1", help="Interface to bind; 0.0.0.0 exposes the service to the network."),
        task: str | None = typer.Option(None, help="Task name (inferred when omitted)."),
        backend: str = typer.Option("auto", help="Backend name, or 'auto'."),
        threads: int | None = typer.Option(None, help="Intra-op threads of the backend."),
        max_batch_size: int = typer.Option(32, help="Largest batch the dynamic batcher forms (1 = no batching)."),
        max_wait_ms: float = typer.Option(5.0, help="Longest an item waits for a batch to fill."),
        model_batch_size: str = typer.Option(
            "auto",
            help="Items per model call within a batch (length-sorted): a number, or 'auto' (the model's "
            "own, else measured at warm-up for text encoders).",
        ),
        max_queue: int = typer.Option(256, help="Items that may wait; beyond this requests get 503 at once."),
        continuous_batching: bool = typer.Option(
            True,
            help="Text generation: new requests join the running decode (up to --max-batch-size sequences) "
            "on backends that can (ONNX Runtime decoders).",
        ),
        timeout: float = typer.Option(30.0, help="Per-request deadline in seconds (504 after it)."),
        max_body_bytes: int = typer.Option(1_000_000, help="Largest request body (413 above it)."),
        max_inputs: int | None = typer.Option(
            None, help="Most inputs one request may carry (default and ceiling: --max-queue); more get 413."
        ),
        header_timeout: float = typer.Option(
            10.0, help="Seconds a connection has to send a complete request head; then closed (408 if partial)."
        ),
        body_timeout: float = typer.Option(30.0, help="Seconds from the request head to the end of its body (408)."),
        keep_alive: float = typer.Option(5.0, help="Seconds an idle keep-alive connection stays open."),
        max_header_bytes: int = typer.Option(16384, help="Bytes buffered of an unfinished request head; 400 beyond."),
        shutdown_deadline: float = typer.Option(30.0, help="On SIGTERM, seconds in-flight requests may take."),
        token_file: str | None = typer.Option(None, help="File holding the bearer token (else $AIKIT_SERVE_TOKEN)."),
        name: str | None = typer.Option(None, help="Model name reported by /info and the OpenAI routes."),
        engine: str = typer.Option("uvicorn", help="'uvicorn' (one process) or 'ray' (Ray Serve deployment)."),
        replicas: int = typer.Option(1, help="Ray only: number of model replicas."),
        ray_address: str | None = typer.Option(None, help="Ray only: cluster address (default: start a local one)."),
        log_level: str = typer.Option("info", help="uvicorn log level."),
    ) -> None:
        """Serve a model over HTTP with dynamic batching (see docs/how-to/serve.md)."""
        from aikit.serve.settings import ServeSettings, read_token

        settings = ServeSettings(
            host=host,
            port=port,
            max_batch_size=max_batch_size,
            model_batch_size=_model_batch_size(model_batch_size),
            continuous_batching=continuous_batching,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            timeout_s=timeout,
            max_body_bytes=max_body_bytes,
            max_inputs=max_inputs,
            header_timeout_s=header_timeout,
            body_timeout_s=body_timeout,
            keep_alive_s=keep_alive,
            max_header_bytes=max_header_bytes,
            token=read_token(token_file),
            shutdown_deadline_s=shutdown_deadline,
            model_name=name or _default_name(model),
        )
        if engine == "ray":
            from aikit.serve.ray_serve import run_ray_serve

            run_ray_serve(model, settings, replicas=replicas, task=task, backend=backend, address=ray_address)
            return
        if engine != "uvicorn":
            from aikit.errors import ConfigError

            raise ConfigError(f"--engine must be 'uvicorn' or 'ray', got {engine!r}")
        from aikit.model.model import Model
        from aikit.serve.runner import serve as run_server

        typer.echo(f"loading {model} ...", err=True)
        loaded = Model.load(model, task=task, backend=backend, threads=threads)
        run_server(loaded, settings, log_level=log_level)

    @app.command()
    def batch(
        model: str = typer.Argument(..., help="Model folder, aikit artifact, .gguf/.onnx file or hub id in the cache."),
        input_path: str = typer.Option(..., "--input", "-i", help="JSONL or Parquet file of inputs."),
        output_path: str = typer.Option(..., "--output", "-o", help="JSONL or .parquet file to write."),
        field: str = typer.Option("input", help="Field (column) holding each input; JSONL lines may be bare strings."),
        task: str | None = typer.Option(None, help="Task name (inferred when omitted)."),
        backend: str = typer.Option("auto", help="Backend name, or 'auto'."),
        batch_size: int = typer.Option(64, help="Items per model call."),
        engine: str = typer.Option("local", help="'local' (this process, with progress) or 'ray' (Ray Data)."),
        workers: int = typer.Option(2, help="Ray only: model actors in the pool."),
        ray_address: str | None = typer.Option(None, help="Ray only: cluster address (default: start a local one)."),
    ) -> None:
        """Run a model over every row of a JSONL / Parquet file and write the results."""
        from aikit.serve.batch_job import BatchJob

        job = BatchJob(
            model=model,
            input=Path(input_path),
            output=Path(output_path),
            field=field,
            task=task,
            backend=backend,
            batch_size=batch_size,
        )
        if engine == "ray":
            from aikit.serve.ray_batch import run_ray_batch

            count = run_ray_batch(job, workers=workers, address=ray_address)
        elif engine == "local":
            from aikit.serve.batch_job import run_local_batch

            count = run_local_batch(job)  # a bar on a terminal (aikit.progress)
        else:
            from aikit.errors import ConfigError

            raise ConfigError(f"--engine must be 'local' or 'ray', got {engine!r}")
        typer.echo(f"wrote {count} results to {output_path}", err=True)


def _default_name(source: str) -> str:
    path = Path(source)
    return path.stem if path.suffix in (".gguf", ".onnx") else (path.name or source)


def _model_batch_size(value: str) -> int | None:
    """``--model-batch-size``: ``auto`` (None) or a positive integer (checked by ``ServeSettings``)."""
    if value == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        from aikit.errors import ConfigError

        raise ConfigError(f"--model-batch-size must be a number or 'auto', got {value!r}") from None
