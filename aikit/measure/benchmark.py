"""``benchmark``: how fast a model runs here, and how much memory and disk it takes.

For each batch size: ``warmup`` untimed calls of ``predict``, then ``repeats`` timed ones on
consecutive slices of ``inputs`` (cycling when there are too few). Generative models are also
streamed one prompt at a time for time to first token and time per output token. A thread
samples the process's resident memory while the runs go on. Ctrl-C stops the runs and returns
what was measured (``report.interrupted`` is then true).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aikit.errors import AikitError, ConfigError, InputError
from aikit.measure.benchmark_report import BatchResult, BenchmarkReport, LatencyStats, StreamingResult
from aikit.progress import progress_bar

if TYPE_CHECKING:
    from aikit.model.model import Model

__all__ = ["MemorySampler", "benchmark", "model_size_bytes"]
logger = logging.getLogger("aikit.benchmark")

Timer = Callable[[], float]
_PREDICT_ONLY = ("max_length",)  # predict() settings that are not task options (stream() refuses them)


def _resident_bytes_reader() -> Callable[[], int] | None:
    """A cheap function returning this process's resident memory now, or None off Linux."""
    statm = Path("/proc/self/statm")
    if not statm.exists():
        return None
    page = os.sysconf("SC_PAGE_SIZE")
    return lambda: int(statm.read_text().split()[1]) * page


def _lifetime_peak_bytes() -> int | None:
    """The process's peak resident memory since it started (where /proc is missing)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # bytes on macOS, KiB on Linux


class MemorySampler:
    """Samples resident memory every ``interval`` seconds on a daemon thread while active.

    Without ``/proc`` only the process's lifetime peak is known, and ``before`` stays None.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self._read = _resident_bytes_reader()
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.before: int | None = None
        self.peak: int | None = None

    def _sample(self) -> None:
        if self._read is not None:
            value = self._read()
            self.peak = value if self.peak is None else max(self.peak, value)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> MemorySampler:
        if self._read is not None:
            self.before = self.peak = self._read()
            self._thread = threading.Thread(target=self._loop, name="aikit-memory-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        if self._read is None:
            self.peak = _lifetime_peak_bytes()


def model_size_bytes(model: Model) -> tuple[int | None, str | None]:
    """The model's size on disk and how it was found.

    Saves the model to a temporary folder and sums its files (weights, tokenizer, manifest);
    when the model cannot be saved, sums the bytes of its torch module's parameters and buffers.
    """
    with tempfile.TemporaryDirectory(prefix="aikit-size-") as tmp:
        try:
            saved = model.save(Path(tmp) / "model")
        except AikitError as exc:
            logger.info("cannot save the model to measure its size (%s); counting its weights instead", exc)
        else:
            return sum(f.stat().st_size for f in saved.rglob("*") if f.is_file()), "saved artifact"
    module = model.backend.torch_module()
    if module is None:
        return None, None
    tensors = chain(module.parameters(), module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors), "weights in memory"


def _cycle(items: Sequence[Any], start: int, count: int) -> list[int]:
    return [(start + i) % len(items) for i in range(count)]


@contextmanager
def _progress(enabled: bool | None, total: int, desc: str) -> Iterator[Any]:
    bar = progress_bar(total, desc=desc, unit="run", enabled=enabled)
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


class _Runner:
    """Holds the state of one benchmark so that an interrupt can keep the half-finished batch size."""

    def __init__(
        self,
        model: Model,
        inputs: list[Any],
        *,
        timer: Timer,
        warmup: int,
        repeats: int,
        options: dict[str, Any],
        report: BenchmarkReport,
    ) -> None:
        self.model, self.inputs, self.timer = model, inputs, timer
        self.warmup, self.repeats, self.options, self.report = warmup, repeats, options, report
        self.cursor = 0
        self.pending: tuple[int, list[float], int, int | None] | None = None  # batch size, samples, items, tokens
        self.token_counts = self._input_token_counts()

    def _input_token_counts(self) -> list[int] | None:
        task = self.model.task
        if task.generative or task.input_kind != "text":
            return None  # generation counts generated tokens; images have none
        examples = task.preprocess(self.inputs, max_length=self.options.get("max_length"))
        return [e.length for e in examples]

    def _call(self, batch_size: int) -> tuple[float, int | None]:
        indices = _cycle(self.inputs, self.cursor, batch_size)
        self.cursor = (self.cursor + batch_size) % len(self.inputs)
        items = [self.inputs[i] for i in indices]
        start = self.timer()
        results = self.model.predict(items, batch_size=batch_size, progress=False, **self.options)
        elapsed = self.timer() - start
        if self.model.task.generative:
            return elapsed, sum(len(r.token_ids) for r in results)
        if self.token_counts is None:
            return elapsed, None
        return elapsed, sum(self.token_counts[i] for i in indices)

    def measure_batch(self, batch_size: int, bar: Any) -> None:
        for _ in range(self.warmup):
            self._call(batch_size)
            if bar is not None:
                bar.update(1)
        samples: list[float] = []
        self.pending = (batch_size, samples, 0, None)
        tokens: int | None = None
        for _ in range(self.repeats):
            elapsed, count = self._call(batch_size)
            samples.append(elapsed)
            tokens = None if count is None else (tokens or 0) + count
            self.pending = (batch_size, samples, len(samples) * batch_size, tokens)
            if bar is not None:
                bar.update(1)
        self.flush()

    def flush(self) -> None:
        """Turn the samples of the batch size in progress (if any) into a result."""
        if self.pending is not None and self.pending[1]:
            batch_size, samples, items, tokens = self.pending
            self.report.batches.append(
                BatchResult(
                    batch_size=batch_size,
                    latency=LatencyStats.from_samples(samples),
                    items=items,
                    seconds=sum(samples),
                    tokens=tokens,
                )
            )
        self.pending = None

    def measure_streaming(self, runs: int, bar: Any) -> None:
        stream_options = {k: v for k, v in self.options.items() if k not in _PREDICT_ONLY}
        tokenizer = self.model.parts.tokenizer
        first_token: list[float] = []
        per_token: list[float] = []
        total_tokens = 0
        try:
            for run in range(runs):
                prompt = self.inputs[run % len(self.inputs)]
                start = self.timer()
                first: float | None = None
                text = ""
                for piece in self.model.stream(prompt, **stream_options):
                    if first is None:
                        first = self.timer()
                    text += piece
                end = self.timer()
                if first is None:
                    continue  # nothing generated: no first token to time
                first_token.append(first - start)
                count = len(tokenizer(text, add_special_tokens=False)["input_ids"]) if tokenizer is not None else 0
                total_tokens += count
                if count > 1:
                    per_token.append((end - first) / (count - 1))
                if bar is not None:
                    bar.update(1)
        finally:
            if first_token:
                self.report.streaming = StreamingResult(
                    time_to_first_token=LatencyStats.from_samples(first_token),
                    time_per_output_token=LatencyStats.from_samples(per_token) if per_token else None,
                    output_tokens=total_tokens,
                )


def benchmark(
    model: Model,
    inputs: Sequence[Any],
    *,
    batch_sizes: Sequence[int] = (1, 8, 32),
    warmup: int = 1,
    repeats: int = 10,
    stream_runs: int | None = None,
    name: str | None = None,
    measure_size: bool = True,
    progress: bool | None = None,
    timer: Timer = time.perf_counter,
    **predict_options: Any,
) -> BenchmarkReport:
    """Measure ``model`` on ``inputs`` at each of ``batch_sizes``; see the module docstring.

    ``predict_options`` go to every ``predict`` call (``max_new_tokens=32`` for generation,
    ``max_length=128``). ``stream_runs`` (generation only; default ``repeats``) sets how many
    prompts are streamed; 0 skips streaming. ``timer`` returns seconds (tests inject a fake
    clock). ``measure_size`` saves the model to a temporary folder once, after the runs.
    """
    from aikit.model.artifact import library_versions
    from aikit.sysinfo import machine_info

    items = list(inputs) if not isinstance(inputs, (str, bytes)) else [inputs]
    if not items:
        raise InputError("benchmark needs at least one input")
    sizes = list(batch_sizes)
    if not sizes or any(not isinstance(b, int) or isinstance(b, bool) or b < 1 for b in sizes):
        raise ConfigError(f"batch_sizes must be positive integers, got {batch_sizes!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise ConfigError(f"warmup must be a non-negative integer, got {warmup!r}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"repeats must be a positive integer, got {repeats!r}")
    generative = model.task.generative
    runs = (repeats if stream_runs is None else stream_runs) if generative else 0
    report = BenchmarkReport(
        name=name or Path(model.parts.source.location).name or model.task.name,
        task=model.task.name,
        model=model.describe(),
        settings={
            "batch_sizes": sizes,
            "warmup": warmup,
            "repeats": repeats,
            "stream_runs": runs,
            "inputs": len(items),
            "options": {k: repr(v) for k, v in predict_options.items()},
        },
        machine=machine_info(),
        versions=library_versions(),
    )
    runner = _Runner(model, items, timer=timer, warmup=warmup, repeats=repeats, options=predict_options, report=report)
    total = len(sizes) * (warmup + repeats) + runs
    sampler = MemorySampler()
    try:
        with sampler, _progress(progress, total, f"benchmark {report.name}") as bar:
            for size in sizes:
                runner.measure_batch(size, bar)
            if runs:
                runner.measure_streaming(runs, bar)
    except KeyboardInterrupt:
        runner.flush()
        report.interrupted = True
        logger.warning("benchmark interrupted: returning the %d batch size(s) measured so far", len(report.batches))
    report.rss_before_bytes, report.peak_rss_bytes = sampler.before, sampler.peak
    if measure_size and not report.interrupted:
        report.model_size_bytes, report.size_method = model_size_bytes(model)
    return report
