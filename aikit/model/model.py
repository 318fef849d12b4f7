"""``Model``: the typed front door. Load, predict, convert, compress, save.

Every call dispatches through registered plugins: loaders read the source, a task encodes
inputs and decodes outputs, a backend runs the weights, and ``aikit_predict`` middleware wraps
each prediction. The core never names a particular backend or task.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typing_extensions import override

from aikit.contracts.options import BackendOptions, LoadOptions, options_from_kwargs
from aikit.contracts.parts import ModelParts
from aikit.contracts.predict_call import PredictCall, SequenceRunner, StreamClosed
from aikit.errors import BackendError, BackendUnavailableError, ConfigError, InputError, ModelLoadError
from aikit.model._resources import check_memory
from aikit.plugins.host import get_backend, get_host, get_task, resolve_task, strategies_for

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    from numpy.typing import NDArray

    from aikit.contracts.backend import Backend
    from aikit.contracts.candidate import Candidate
    from aikit.contracts.strategy import CompressionConfig
    from aikit.contracts.task import Task
    from aikit.measure.benchmark_report import BenchmarkReport
    from aikit.measure.evaluate import EvaluationReport

__all__ = ["Model"]
logger = logging.getLogger("aikit")


class Model:
    """A loaded model bound to one task and one backend.

    Build one with ``Model.load`` or ``Model.from_module``. Models are immutable from the
    outside: ``to`` and ``compress`` return new models and leave this one untouched. One model
    may be used from several threads; calls are serialised per model (tokenizers and several
    runtimes are not re-entrant), so use one model per worker for parallel throughput.
    """

    def __init__(
        self,
        *,
        task: Task,
        backend: Backend,
        parts: ModelParts,
        transformations: Sequence[Mapping[str, Any]] = (),
        compression_report: Any = None,
        optimization_report: Any = None,
    ) -> None:
        self.task = task
        self.backend = backend
        self.parts = parts
        self.transformations: tuple[dict[str, Any], ...] = tuple(dict(t) for t in transformations)
        self.compression_report = compression_report
        self.optimization_report = optimization_report
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ building
    @classmethod
    def load(
        cls,
        source: str | os.PathLike[str] | Any,
        *,
        task: str | None = None,
        backend: str = "auto",
        device: str | None = None,
        threads: int | None = None,
        dtype: str | None = None,
        backend_options: Mapping[str, Any] | None = None,
        labels: Sequence[str] | None = None,
        module: Any = None,
        preprocess: Callable[[Any], Any] | None = None,
        allow_pickle: bool = False,
        trust_remote_code: bool = False,
        verify: bool = True,
        expected_sha256: str | None = None,
    ) -> Model:
        """Load a model from a local Hugging Face folder, a hub id in the local cache, a GGUF or
        ONNX file, an aikit artifact folder, or a ``torch.nn.Module``.

        ``task`` is inferred from the model's config when omitted. ``backend="auto"`` picks the
        best available backend (an artifact reloads on the backend it was saved from).
        ``module`` / ``preprocess`` supply the Python parts of a plain-PyTorch artifact that cannot
        be stored as data (``module`` is also the skeleton a ``.pt``/``.pth``/``.bin``/``.ckpt``
        state dict loads into; those files need ``allow_pickle=True``). ``allow_pickle`` /
        ``trust_remote_code`` are explicit opt-ins to run code shipped with a model;
        ``verify=False`` skips an artifact's sha256 checks (logged); ``expected_sha256`` pins the
        sha256 of an artifact's ``aikit.json`` (and through it every file it lists). An artifact
        never supplies code: a plain-PyTorch artifact needs ``module=``, and one saved with a
        preprocess function needs ``preprocess=`` (the error names what it was saved with).

        Raises ``ModelLoadError`` when the source cannot be read, ``UnknownNameError`` for an
        unknown task or backend, ``BackendUnavailableError`` when the backend cannot run here,
        ``ResourceError`` (before reading anything) when the weights clearly exceed free memory.
        """
        options = BackendOptions(device=device, threads=threads, dtype=dtype, extra=dict(backend_options or {}))
        load_options = LoadOptions(
            allow_pickle=allow_pickle,
            trust_remote_code=trust_remote_code,
            verify=verify,
            expected_sha256=expected_sha256,
        )
        if task is not None:
            get_task(task)  # fail fast, before reading gigabytes
        if backend != "auto":
            _check_available(get_backend(backend))  # e.g. backend="cuda" without a GPU: say so before loading
        check_memory(source)  # ResourceError now rather than the OOM killer later
        parts = _read_source(source, task=task, options=load_options)
        if labels is not None:
            parts.labels = list(labels)
        if module is not None and parts.payload == "artifact":
            parts.extras["module"] = module  # the skeleton a plain-PyTorch artifact's weights load into
        elif "state_dict" in parts.extras:  # a weights-only file (.pt state dict)
            _bind_state_dict(parts, module)
        if expected_sha256 is not None and parts.payload != "artifact":
            raise ConfigError(f"expected_sha256 pins an aikit artifact's manifest; {source!r:.200} is not an artifact")
        if preprocess is not None:
            parts.preprocess = preprocess
        elif parts.payload == "artifact":
            _require_saved_preprocess(parts)
        task_cls = resolve_task(parts, task)
        if parts.payload == "artifact":
            return cls._from_artifact(parts, task_cls, backend, options)
        backend_cls = _resolve_backend(parts, task_cls, backend, options)
        built, applied = backend_cls.from_loaded_parts(parts, options)
        if applied:  # a lossless compressed form (Backend.from_loaded_parts): drop the torch weights as compress does
            parts.module = built.torch_module()
            parts.module_loader = None  # nor build them later (a deferred module stays unread)
        return cls(task=task_cls(parts), backend=built, parts=parts, transformations=[c.to_dict() for c in applied])

    @classmethod
    def _from_artifact(cls, parts: ModelParts, task_cls: type[Task], backend: str, options: BackendOptions) -> Model:
        manifest = parts.manifest or {}
        assert parts.artifact_dir is not None
        saved_backend = str(manifest["backend"])
        backend_cls = get_backend(saved_backend)
        _check_available(backend_cls)
        state = manifest.get("backend_state", {})
        convert = backend not in ("auto", saved_backend)
        restored = backend_cls.load(parts.artifact_dir, parts, state, BackendOptions() if convert else options)
        try:  # task settings come from the manifest: each task validates its own (ConfigError, ...)
            task_obj = task_cls(parts)
        except (ValueError, TypeError) as exc:
            raise ModelLoadError(
                f"artifact {parts.artifact_dir}: the task_state in its manifest is invalid for task "
                f"{task_cls.name!r}: {exc}",
                source=parts.artifact_dir,
            ) from exc
        model = cls(
            task=task_obj,
            backend=restored,
            parts=parts,
            transformations=manifest.get("transformations", []),
            compression_report=manifest.get("compression_report"),
            optimization_report=manifest.get("optimization_report"),
        )
        if convert:
            return model.to(backend, device=options.device, threads=options.threads, dtype=options.dtype)
        return model

    @classmethod
    def from_module(
        cls,
        module: Any,
        *,
        task: str,
        preprocess: Callable[[Any], Any] | None = None,
        labels: Sequence[str] | None = None,
        tokenizer: Any = None,
        backend: str = "auto",
        device: str | None = None,
        threads: int | None = None,
        dtype: str | None = None,
    ) -> Model:
        """Wrap a plain ``torch.nn.Module`` (your own CNN or MLP) as a first-class model.

        ``preprocess`` turns one raw input into the module's input array (for image tasks, an
        ``aikit.ImagePreprocess`` is saved with the artifact; a plain function is recorded by name
        only and must be passed again to ``Model.load``). ``labels`` name the output classes.
        """
        return cls.load(
            module,
            task=task,
            backend=backend,
            device=device,
            threads=threads,
            dtype=dtype,
            labels=labels,
            preprocess=preprocess,
        )._with_tokenizer(tokenizer)

    def _with_tokenizer(self, tokenizer: Any) -> Model:
        if tokenizer is not None:
            self.parts.tokenizer = tokenizer
            self.task = type(self.task)(self.parts)
        return self

    # ------------------------------------------------------------------ facts
    @property
    def task_name(self) -> str:
        """The registered name of this model's task."""
        return self.task.name

    @property
    def backend_name(self) -> str:
        """The registered name of the backend running this model."""
        return self.backend.name

    @property
    def labels(self) -> list[str] | None:
        """Class labels for classification tasks, else None."""
        return self.parts.labels

    def describe(self) -> dict[str, Any]:
        """Facts about this model: task, backend (device, dtype, threads), source, transformations."""
        return {
            "task": self.task.name,
            **self.backend.describe(),
            "source": self.parts.source.to_dict(),
            "transformations": list(self.transformations),
        }

    @override
    def __repr__(self) -> str:
        return (
            f"<aikit.Model task={self.task.name!r} backend={self.backend.name!r} source={self.parts.source.location!r}>"
        )

    # ------------------------------------------------------------------ running
    def predict(
        self,
        inputs: Any,
        *,
        batch_size: int | None = None,
        max_length: int | None = None,
        progress: bool | None = None,
        **options: Any,
    ) -> Any:
        """Run the model on one input or a list of inputs.

        One input gives one typed result (``Embedding``, ``Classification``, ``TokenTags``,
        ``Generation``); a list gives a list in the same order (an empty list gives ``[]``).
        Inputs are batched by length; ``batch_size`` defaults to the task's; ``max_length``
        truncates (with one warning). ``options`` are the task's own (for generation:
        ``max_new_tokens``, ``do_sample``, ``temperature``, ...); unknown names raise ``ConfigError``.
        """
        if batch_size is not None and (
            not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1
        ):
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if max_length is not None and (
            not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1
        ):
            raise ConfigError(f"max_length must be a positive integer, got {max_length!r}")
        task_options = self._task_options(options)
        is_batch = self.task.is_batch(inputs)
        call = PredictCall(
            model=self,
            inputs=list(inputs) if is_batch else [inputs],
            options=task_options,
            batch_size=batch_size,
            max_length=max_length,
            progress=progress,
        )
        host = get_host()
        try:
            results: list[Any] = host.pm.hook.aikit_predict(call=call)
        except Exception as exc:
            _name_failing_plugin(host, exc, "aikit_predict")
            raise
        return results if is_batch else results[0]

    def stream(self, prompt: Any, *, runner: SequenceRunner | None = None, **options: Any) -> Generator[str, None, Any]:
        """Yield generated text piece by piece (text-generation models only).

        The call goes through the ``aikit_predict`` middleware like ``predict`` (with
        ``call.on_text`` set), so input middleware sees the prompt before the model does. The
        generator's return value (``StopIteration.value``) is the finished ``Generation`` as the
        middleware returned it. Generation runs in a worker thread; closing the generator early
        stops it after the current token, and returns once the thread has ended.

        ``runner`` (for servers, such as ``aikit.serve.ContinuousBatcher``): decode this stream
        together with other callers' instead of holding the model alone for its whole length.
        """
        if not self.task.generative:
            raise ConfigError(f"stream() needs a model that generates text; this one does {self.task.name!r}")
        task_options = self._task_options(options)
        pieces: queue.SimpleQueue[Any] = queue.SimpleQueue()
        closed = threading.Event()

        def on_text(piece: str) -> None:
            if closed.is_set():
                raise StreamClosed("the consumer stopped reading the stream")
            pieces.put(piece)

        call = PredictCall(
            model=self, inputs=[prompt], options=task_options, progress=False, on_text=on_text, runner=runner
        )
        host = get_host()

        consumer_done = threading.Event()

        def run_chain() -> None:
            # The model stays held until the consumer has exhausted or closed the stream, not just
            # until generation ends: a stream holds the model like a predict call does (SECURITY.md
            # section 6), so other callers never interleave with a stream that is still being read.
            # A runner shares the model between streams itself, step by step.
            with self._lock if runner is None else contextlib.nullcontext():
                try:
                    results: list[Any] = host.pm.hook.aikit_predict(call=call)
                    pieces.put(_Finished(results[0]))
                except BaseException as exc:  # handed to the consumer's thread, raised there
                    pieces.put(_Failed(exc))
                consumer_done.wait()

        worker = threading.Thread(target=run_chain, name="aikit-stream-chain", daemon=True)
        worker.start()
        try:
            while True:
                item = pieces.get()
                if isinstance(item, _Finished):
                    return item.result
                if isinstance(item, _Failed):
                    if isinstance(item.error, Exception):
                        _name_failing_plugin(host, item.error, "aikit_predict")
                    raise item.error
                yield item
        finally:
            closed.set()
            consumer_done.set()
            worker.join()  # the model is free again, and no generating thread outlives its stream

    def embed(self, texts: Sequence[str], *, batch_size: int | None = None) -> NDArray[np.float32]:
        """Embeddings of ``texts``: one ``(len(texts), dim)`` float32 matrix (tasks that declare ``embeds``)."""
        import numpy as np

        if not self.task.embeds:
            raise ConfigError(
                f"embed() needs a model that embeds (feature-extraction); this one does {self.task.name!r}"
            )
        if isinstance(texts, str):
            raise InputError("embed() takes a list of strings; wrap a single string in a list")
        results = self.predict(list(texts), batch_size=batch_size)
        if not results:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([r.vector for r in results])

    def _task_options(self, options: Mapping[str, Any]) -> Any:
        options_cls = self.task.options_class
        if options_cls is None:
            if options:
                raise ConfigError(f"task {self.task.name!r} takes no options; got {', '.join(sorted(options))}")
            return None
        return options_from_kwargs(options_cls, options, what=self.task.name)

    # ------------------------------------------------------------------ measuring
    def benchmark(
        self, inputs: Sequence[Any], *, batch_sizes: Sequence[int] = (1, 8, 32), **options: Any
    ) -> BenchmarkReport:
        """Latency percentiles, throughput, memory and size of this model on ``inputs`` at each batch
        size (warm-up, then repeated runs). See ``aikit.measure.benchmark.benchmark`` for ``options``."""
        from aikit.measure.benchmark import benchmark

        return benchmark(self, inputs, batch_sizes=batch_sizes, **options)

    def evaluate(self, data: Any, *, metrics: str | Sequence[str] | None = None, **options: Any) -> EvaluationReport:
        """Score this model on ``data`` (a JSONL / CSV / ... file or an ``aikit.measure.eval_data.Dataset``)
        with registered ``metrics``. See ``aikit.measure.evaluate.evaluate`` for ``options``."""
        from aikit.measure.evaluate import evaluate

        return evaluate(self, data, metrics=metrics, **options)

    def explain(
        self, inputs: Any, *, method: str | None = None, target: str | int | None = None, **options: Any
    ) -> Any:
        """Which tokens or pixels this classifier's score depends on: one ``aikit.measure.explain.Explanation``
        per input (a list for a list). ``method`` names a registered explainer (default: integrated
        gradients on torch-based backends, occlusion elsewhere); ``target`` a label or class index
        (default: the predicted one). See ``aikit.measure.explain.explain`` for ``options``."""
        from aikit.measure.explain import explain

        return explain(self, inputs, method=method, target=target, **options)

    # ------------------------------------------------------------------ converting
    def to(
        self,
        backend: str,
        *,
        device: str | None = None,
        threads: int | None = None,
        dtype: str | None = None,
        backend_options: Mapping[str, Any] | None = None,
    ) -> Model:
        """A new model running on ``backend`` (``"torch"``, ``"onnxruntime"``, ``"cuda"``, ``"auto"``).

        Conversion starts from this model's torch module, so a compressed torch model carries its
        compression over where every strategy applied to it says the target keeps it
        (``Strategy.carries_to``); otherwise this raises ``BackendError`` naming the strategy, before
        any work, instead of converting something other than this model.
        """
        options = BackendOptions(device=device, threads=threads, dtype=dtype, extra=dict(backend_options or {}))
        module = self.backend.torch_module()
        if module is not None:
            # The target may move or cast the module in place; this model must stay untouched.
            import copy

            module = copy.deepcopy(module)
        parts = _copy_parts(self.parts, module=module)
        if module is None and parts.onnx_path is None:
            raise BackendError(
                f"cannot move a model from backend {self.backend.name!r} to {backend!r}: "
                f"{self.backend.name!r} holds no torch module or ONNX file to convert from; "
                "load the original model again with backend=... instead"
            )
        backend_cls = _resolve_backend(parts, type(self.task), backend, options)
        if backend_cls.name == self.backend.name and options == BackendOptions():
            return self
        _check_carried(self.transformations, backend_cls.name)
        new_backend = backend_cls.from_parts(parts, options)
        return Model(
            task=type(self.task)(parts),
            backend=new_backend,
            parts=parts,
            transformations=self.transformations,
            compression_report=self.compression_report,
        )

    def compress(
        self,
        *strategies: str | CompressionConfig,
        calibration: Sequence[Any] | None = None,
        max_quality_drop: float | None = None,
        measure_speed: bool = True,
        progress: bool | None = None,
    ) -> Model:
        """A new, compressed model; this one is untouched. See ``aikit.compress.chain``.

        ``strategies`` are config objects (``aikit.quant.Int8Dynamic()``) or shorthands
        (``"int8-dynamic"``, ``"prune-structured:ffn=0.3"``), applied in order. The result's
        ``compression_report`` says what each step cost in size, quality and speed.
        """
        from aikit.compress.chain import compress_model

        return compress_model(
            self,
            strategies,
            calibration=calibration,
            max_quality_drop=max_quality_drop,
            measure_speed=measure_speed,
            progress=progress,
        )

    def optimize(
        self,
        *,
        calibration: Sequence[Any] | None,
        max_quality_drop: float = 0.01,
        objective: str = "throughput",
        batch_size: int | None = None,
        budget_seconds: float | None = 600.0,
        candidates: Sequence[Candidate] | None = None,
        max_new_tokens: int = 16,
        progress: bool | None = None,
    ) -> Model:
        """The fastest variant of this model on this machine whose quality drop stays within
        ``max_quality_drop`` (the same per-task measure as ``compress``); this model is untouched.

        ``objective``: ``"throughput"`` (inputs/s at ``batch_size``; decode tokens/s for text
        generation), ``"latency"`` (median time for one input), ``"size"`` or ``"memory"``.
        ``batch_size`` None means the task's default, and then (for throughput) the chosen model's
        default batch size is itself measured among that, half and a quarter of it.
        Candidates (a backend plus a chain of strategies) come from the installed plugins
        (``aikit_optimize_candidates``), or only from ``candidates=``. Every fourth calibration
        input is held out for quality; ``budget_seconds`` stops trying new candidates (and an
        accuracy guard under way) and Ctrl-C stops at once, both returning the best found so far.
        The result's ``optimization_report`` lists every candidate with its quality, speed, size
        and why it lost; ``save`` stores the chosen chain so ``Model.load`` reproduces it. See
        ``aikit.optimize.search``.
        """
        from aikit.optimize.search import optimize_model

        return optimize_model(
            self,
            calibration=calibration,
            max_quality_drop=max_quality_drop,
            objective=objective,
            batch_size=batch_size,
            budget_seconds=budget_seconds,
            candidates=candidates,
            max_new_tokens=max_new_tokens,
            progress=progress,
        )

    # ------------------------------------------------------------------ saving
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write a portable artifact to ``directory`` atomically and return its path.

        ``Model.load(directory)`` restores this model with no extra arguments (plain-PyTorch
        models may need ``module=`` / ``preprocess=``, as ``from_module`` explains).
        """
        from aikit.model._saving import save_model

        return save_model(self, directory)


# ---------------------------------------------------------------------- helpers
@dataclass(frozen=True, slots=True)
class _Finished:
    """A streamed chain's end: the result it returned."""

    result: Any


@dataclass(frozen=True, slots=True)
class _Failed:
    """A streamed chain's end: what it raised."""

    error: BaseException


def _copy_parts(parts: ModelParts, *, module: Any) -> ModelParts:
    from dataclasses import replace

    return replace(parts, module=module, artifact_dir=None, manifest=None, task_state=dict(parts.task_state))


def _read_source(source: Any, *, task: str | None, options: LoadOptions) -> ModelParts:
    host = get_host()
    loaders = sorted((cls() for cls in host.loaders.values()), key=lambda ld: -ld.priority)
    for loader in loaders:
        if loader.detects(source):
            parts = loader.load(source, task=task, options=options)
            return parts
    shown = os.fspath(source) if isinstance(source, (str, os.PathLike)) else type(source).__name__
    if (
        isinstance(source, (str, os.PathLike))
        and not Path(source).exists()
        and ("/" in str(source) or os.sep in str(source))
    ):
        raise ModelLoadError(f"model source {shown!r} does not exist", source=source)
    names = ", ".join(sorted(host.loaders)) or "(none: are aikit's plugins installed?)"
    raise ModelLoadError(
        f"no loader understands model source {shown!r}. Registered loaders: {names}. "
        "Pass a Hugging Face model folder, a hub id in the local cache, a .gguf or .onnx file, "
        "an aikit artifact folder, or a torch.nn.Module.",
        source=source,
    )


def _name_failing_plugin(host: Any, exc: BaseException, hook: str) -> None:
    """Add a note naming the third-party plugin whose ``hook`` implementation raised ``exc``.

    The exception keeps its type (callers may catch it); the note shows in every traceback. The
    culprit is the innermost traceback frame that runs one of the hook's implementations.
    """
    impls = {impl.function.__code__: impl.plugin_name for impl in getattr(host.pm.hook, hook).get_hookimpls()}
    culprit = None
    tb = exc.__traceback__
    while tb is not None:
        culprit = impls.get(tb.tb_frame.f_code, culprit)
        tb = tb.tb_next
    if culprit is not None and culprit != "aikit.core":
        exc.add_note(
            f"raised by the aikit plugin {culprit!r} in its {hook} hook "
            f"(set AIKIT_BLOCK_PLUGINS={culprit} to disable it)"
        )


def _require_saved_preprocess(parts: ModelParts) -> None:
    """An artifact saved with a preprocess function records only its name: the caller must pass it."""
    name = parts.task_state.get("preprocess")
    if isinstance(name, str):
        raise ModelLoadError(
            f"artifact {parts.artifact_dir} was saved with the preprocess function `{name:.200}`; artifacts "
            "store data, never code, so pass it again: Model.load(..., preprocess=your_function)",
            source=parts.artifact_dir,
        )


def _bind_state_dict(parts: ModelParts, module: Any) -> None:
    """Load a weights-only file's state dict into the ``module`` skeleton the caller passed."""
    where = parts.source.location
    if module is None:
        raise ModelLoadError(
            f"{where} holds only weights (a state dict), not the network's structure; "
            "pass module=YourNet(...) and task=... to Model.load",
            source=where,
        )
    try:
        module.load_state_dict(parts.extras.pop("state_dict"), strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise ModelLoadError(f"the weights in {where} do not fit the given module: {exc}", source=where) from exc
    parts.module = module
    parts.config = getattr(module, "config", None)


def _check_carried(transformations: Sequence[Mapping[str, Any]], target: str) -> None:
    """Refuse a move to ``target`` that would lose a compression step (see ``Strategy.carries_to``)."""
    host = get_host()
    for step in transformations:
        name = str(step.get("strategy", "?"))
        cls = host.strategies.get(name)
        if cls is None:
            raise BackendError(
                f"this model was compressed with {name!r}, which no installed plugin registers, so aikit cannot "
                f"tell whether backend {target!r} keeps it; install the plugin that provides it"
            )
        if target not in cls.backends | cls.carries_to:
            keeps = sorted(cls.backends | cls.carries_to)
            own = strategies_for(target)
            raise BackendError(
                f"moving this model to backend {target!r} would drop compression step {name!r}: that strategy runs on "
                f"{', '.join(sorted(cls.backends)) or 'no backend'} and carries over to "
                f"{', '.join(sorted(cls.carries_to)) or 'no other backend'}. Move the uncompressed model first and "
                f"compress on {target!r} with one of its own strategies ({', '.join(own) or 'none registered'}), "
                f"let model.optimize() compare both routes, or keep this model on {', '.join(keeps)}"
            )


def _check_available(backend_cls: type[Backend]) -> None:
    reason = backend_cls.unavailable_reason()
    if reason:
        raise BackendUnavailableError(f"backend {backend_cls.name!r} cannot run here: {reason}")


def _resolve_backend(parts: ModelParts, task_cls: type[Task], backend: str, options: BackendOptions) -> type[Backend]:
    host = get_host()
    payload = parts.payload
    if backend != "auto":
        backend_cls = get_backend(backend)
        _check_available(backend_cls)
        if payload not in backend_cls.accepts:
            raise BackendError(
                f"backend {backend!r} cannot run a {payload!r} model "
                f"(it accepts {', '.join(sorted(backend_cls.accepts))})"
            )
        if task_cls.generative and not backend_cls.can_generate:
            raise BackendError(f"backend {backend!r} cannot generate text, which task {task_cls.name!r} needs")
        if options.device is not None and not _device_fits(backend_cls, options.device):
            raise BackendError(
                f"backend {backend!r} does not run on device {options.device!r} "
                f"(it runs on {', '.join(sorted(backend_cls.devices))})"
            )
        return backend_cls
    candidates = [
        cls
        for cls in sorted(host.backends.values(), key=lambda c: -c.priority)
        if payload in cls.accepts
        and cls.unavailable_reason() is None
        and (cls.can_generate or not task_cls.generative)
        and (options.device is None or _device_fits(cls, options.device))
    ]
    if not candidates:
        reasons = []
        for cls in sorted(host.backends.values(), key=lambda c: c.name):
            why = cls.unavailable_reason()
            if why is None and payload not in cls.accepts:
                why = f"does not accept {payload!r} models"
            elif why is None and task_cls.generative and not cls.can_generate:
                why = "cannot generate text"
            elif why is None and options.device is not None and not _device_fits(cls, options.device):
                why = f"does not run on device {options.device!r}"
            reasons.append(f"{cls.name}: {why}")
        raise BackendError(
            f"no available backend can run a {payload!r} model for task {task_cls.name!r}"
            + (f" on device {options.device!r}" if options.device else "")
            + "; "
            + ("; ".join(reasons) or "no backends are registered")
        )
    names = [c.name for c in candidates]
    chosen = host.pm.hook.aikit_choose_backend(parts=parts, task=task_cls, candidates=names, options=options)
    if chosen is not None and chosen not in names:
        raise BackendError(f"a plugin chose backend {chosen!r}, which is not among the candidates {names}")
    name = chosen or names[0]
    logger.info("backend='auto' chose %r among %s", name, names)
    return host.backends[name]


def _device_fits(backend_cls: type[Backend], device: str) -> bool:
    return device.split(":", 1)[0] in backend_cls.devices
