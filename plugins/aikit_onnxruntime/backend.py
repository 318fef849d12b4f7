"""``OrtBackend``: runs exported or foreign ONNX graphs on ONNX Runtime, with KV-cached generation."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from typing_extensions import override

from aikit.contracts.backend import Arrays, Backend, StepDecoder
from aikit.contracts.options import BackendOptions, GenerationOptions
from aikit.contracts.parts import ModelParts
from aikit.errors import ArtifactError, BackendError, ConfigError, ModelLoadError
from aikit.model.artifact import MANIFEST_NAME, listed_file
from aikit_onnxruntime.decoder import DecoderGraph
from aikit_onnxruntime.graph_info import describe_graph, graph_files
from aikit_onnxruntime.session import OrtRunner, make_session
from aikit_onnxruntime.settings import OrtSettings

__all__ = ["OrtBackend"]

DEFAULT_CONTEXT = 2048


class OrtBackend(Backend):
    """ONNX Runtime on the CPU (or CUDA / TensorRT providers).

    From a torch model it exports one graph per task (cached under ``$AIKIT_CACHE_DIR/onnx``,
    validated against torch); from a ``.onnx`` file it runs the file as is. ``threads`` sets
    ``intra_op_num_threads``; see ``aikit_onnxruntime.settings`` for ``backend_options``.
    Its priority (5) is below torch's, so ``backend="auto"`` keeps torch models on torch and
    sends ONNX files here.
    """

    name = "onnxruntime"
    description = "ONNX Runtime (exported graphs, fusions, int8/int4, KV-cached decoding)"
    accepts = frozenset({"torch", "onnx"})
    can_generate = True
    priority = 5
    devices: ClassVar[frozenset[str]] = frozenset({"cpu", "cuda"})

    def __init__(self, folder: Path, facts: Mapping[str, Any], options: BackendOptions, *, config: Any = None) -> None:
        if options.dtype not in (None, "float32"):
            raise ConfigError(
                f"the onnxruntime backend runs float32 graphs; dtype={options.dtype!r} is not supported "
                "(compress with 'ort-int8-dynamic' or 'ort-int4-weight-only' for smaller weights)"
            )
        self.folder = folder
        self.facts = dict(facts)
        self.options = options
        self.settings = OrtSettings.from_options(options.extra)
        self.config = config
        self.threads = options.threads or os.cpu_count() or 1
        self.kind = str(self.facts["kind"])
        graphs: dict[str, str] = dict(self.facts["graphs"])
        self.sessions = {
            name: make_session(folder / file, self.settings, threads=options.threads, device=options.device)
            for name, file in graphs.items()
        }
        self.runners = {
            name: OrtRunner(s, rename_outputs=self.facts.get("rename_outputs")) for name, s in self.sessions.items()
        }
        self.decoder: DecoderGraph | None = None
        if self.kind == "decoder":
            context = self.settings.max_length or int(self.facts.get("context") or DEFAULT_CONTEXT)
            self.decoder = DecoderGraph(
                self.sessions["model"],
                kv_heads=int(self.facts["kv_heads"]),
                head_dim=int(self.facts["head_dim"]),
                shared=bool(self.facts["shared"]),
                capacity=context,
                graph_path=folder / graphs["model"],
            )

    @classmethod
    @override
    def unavailable_reason(cls) -> str | None:
        import importlib.util

        if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
            return "onnxruntime is not installed (pip install 'aikit[onnx]')"
        return None

    # ------------------------------------------------------------------ building
    @classmethod
    @override
    def from_parts(cls, parts: ModelParts, options: BackendOptions) -> Backend:
        settings = OrtSettings.from_options(options.extra)
        _refuse_accuracy_level(settings, "this model is not loaded from a GGUF file onto its own blocks")
        if parts.payload == "onnx":
            assert parts.onnx_path is not None
            facts = dict(parts.extras.get("onnx_facts") or describe_graph(parts.onnx_path))
            facts.setdefault("graphs", {"model": parts.onnx_path.name})
            return cls(parts.onnx_path.parent, facts, options, config=parts.config)
        from aikit_onnxruntime.export.cached import export_parts

        folder, facts = export_parts(parts, settings)
        return cls(folder, facts, options, config=parts.config)

    @classmethod
    @override
    def from_loaded_parts(cls, parts: ModelParts, options: BackendOptions) -> tuple[Backend, tuple[Any, ...]]:
        """A GGUF file on the CPU runs its own blocks (``ort-gguf-native``, see ``aikit_onnxruntime.gguf.load``:
        a cached graph opens without the torch module); else ``from_parts`` on the module, built now if deferred.

        ``backend_options={"accuracy_level": 4}`` picks that graph's int8-activation form; it raises
        ``ConfigError`` (before any export) for a model that does not take this path.
        """
        from aikit.plugins.host import resolve_task
        from aikit_onnxruntime.gguf.load import native_backend, prefers_native

        if parts.payload == "torch" and prefers_native(
            parts, resolve_task(parts, None), options, fallback="ONNX Runtime"
        ):
            backend, config = native_backend(parts, options)
            return backend, (config,)
        parts.require_module()
        return cls.from_parts(parts, options), ()

    def with_graphs(self, folder: Path, facts: Mapping[str, Any]) -> OrtBackend:
        """A backend of the same settings running other graphs (compression strategies use it)."""
        return type(self)(folder, facts, self.options, config=self.config)

    def graph_path(self, name: str = "model") -> Path:
        return self.folder / str(self.facts["graphs"][name])

    @override
    def weight_bytes(self) -> int:
        """Bytes of every graph this backend runs, external weight files included."""
        return sum(graph_bytes(self.graph_path(name)) for name in self.facts["graphs"])

    # ------------------------------------------------------------------ running
    @override
    def forward(self, inputs: Arrays) -> dict[str, NDArray[Any]]:
        if self.decoder is not None:
            ids, mask = inputs["input_ids"], inputs.get("attention_mask")
            if mask is None:
                mask = np.ones_like(ids)
            return {"logits": self.decoder.logits(np.asarray(ids, dtype=np.int64), np.asarray(mask, dtype=np.int64))}
        if self.kind == "seq2seq":
            if "decoder_input_ids" not in inputs:
                raise BackendError("a seq2seq model's forward needs decoder_input_ids; use generate for text")
            hidden = self.runners["encoder"].run(inputs)["last_hidden_state"]
            return self.runners["decoder"].run(
                {
                    "decoder_input_ids": inputs["decoder_input_ids"],
                    "encoder_hidden_states": hidden,
                    "encoder_attention_mask": inputs["attention_mask"],
                }
            )
        return self.runners["model"].run(inputs)

    @override
    def generate(self, inputs: Arrays, options: GenerationOptions) -> Iterator[NDArray[np.int64]]:
        ids = np.ascontiguousarray(inputs["input_ids"], dtype=np.int64)
        mask = np.ascontiguousarray(inputs["attention_mask"], dtype=np.int64)
        if self.decoder is not None:
            return self.decoder.generate(ids, mask, options)
        if self.kind == "seq2seq":
            return self._generate_seq2seq(ids, mask, options)
        raise BackendError("this ONNX graph has no KV-cache inputs (past_key_values.*), so it cannot generate text")

    @override
    def step_decoder(self) -> StepDecoder | None:
        """Continuous batching for decoder graphs (both cache layouts); None for other graphs."""
        if self.decoder is None:
            return None
        from aikit_onnxruntime.continuous import step_decoder_for

        return step_decoder_for(self.decoder)

    def _generate_seq2seq(
        self, ids: NDArray[np.int64], mask: NDArray[np.int64], options: GenerationOptions
    ) -> Iterator[NDArray[np.int64]]:
        """Greedy / sampled decoding with the cache-free decoder graph (the whole target is re-run each step)."""
        from aikit.contracts.sampling import new_rng, select_next

        start = self.facts.get("decoder_start_token_id")
        if start is None:
            raise BackendError("this seq2seq export has no decoder_start_token_id")
        rng = new_rng(options)
        hidden = self.runners["encoder"].run({"input_ids": ids, "attention_mask": mask})["last_hidden_state"]
        target = np.full((ids.shape[0], 1), int(start), dtype=np.int64)
        history = [[int(start)] for _ in range(ids.shape[0])]
        decoder = self.runners["decoder"]
        for _ in range(options.max_new_tokens):
            logits = decoder.run(
                {"decoder_input_ids": target, "encoder_hidden_states": hidden, "encoder_attention_mask": mask}
            )["logits"][:, -1, :]
            token = select_next(logits, history, options, rng)
            yield token
            for row, t in enumerate(token.tolist()):
                history[row].append(t)
            target = np.concatenate([target, token[:, None]], axis=1)

    # ------------------------------------------------------------------ artifacts
    @override
    def save(self, directory: Path) -> dict[str, Any]:
        if not all((self.folder / str(f)).is_file() for f in self.facts["graphs"].values()):
            raise ArtifactError(
                f"this model's ONNX graphs were in {self.folder}, which is gone: aikit's cache removes the least "
                "recently used entries past AIKIT_CACHE_MAX_GB (and `aikit cache --clear` removes all); load the "
                "model again, then save it"
            )
        for file in self.facts["graphs"].values():
            for name in graph_files(self.folder / str(file)):
                target = directory / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.folder / name, target)
        genai_config = self.folder / "genai_config.json"
        if self.kind == "decoder" and genai_config.is_file():
            shutil.copyfile(genai_config, directory / "genai_config.json")
        if (
            self.config is not None
            and hasattr(self.config, "save_pretrained")
            and not (directory / "config.json").exists()
        ):
            self.config.save_pretrained(directory)
        return {"facts": self.facts}

    @classmethod
    @override
    def load(cls, directory: Path, parts: ModelParts, state: Mapping[str, Any], options: BackendOptions) -> Backend:
        """Open the artifact's graphs after checking them: valid facts, every graph and external-data
        file listed (so hashed and inside the folder), every graph parsing. Any of that failing is a
        ``ModelLoadError`` naming the file.

        ``onnx.checker`` is not run here: graphs aikit built may hold ONNX Runtime's own operators
        (onnxruntime-genai's builder puts ``SimplifiedLayerNormalization`` in the default domain),
        which it rejects. The hashes pin these bytes to what aikit wrote, and ONNX Runtime validates
        the graph when it opens the session."""
        from pydantic import ValidationError

        from aikit_onnxruntime.artifact_facts import ArtifactFacts
        from aikit_onnxruntime.loader import check_onnx_file

        try:
            facts = ArtifactFacts.model_validate(state.get("facts"))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
            raise ModelLoadError(
                f"artifact {directory}: {MANIFEST_NAME} has invalid ONNX graph facts: {problems}", source=directory
            ) from exc
        manifest = parts.manifest or {}
        for graph in facts.graphs.values():
            path = listed_file(directory, manifest, graph, what="an ONNX graph")
            folder = Path(graph).parent
            for name in check_onnx_file(path, checker=False):  # external data must be listed too, not merely inside
                listed_file(directory, manifest, (folder / name).as_posix(), what=f"external data of {graph}")
        settings = OrtSettings.from_options(options.extra)
        runs = facts.model_dump().get("quantization") or [{}]
        last = runs[-1] if isinstance(runs[-1], dict) else {}
        saved = last.get("accuracy_level") if last.get("strategy") == "ort-gguf-native" else None
        if settings.accuracy_level is not None and settings.accuracy_level != saved:
            _refuse_accuracy_level(
                settings,
                f"artifact {directory} runs the graph it was saved with"
                + ("" if saved is None else f" (accuracy_level={saved})"),
            )
        return cls(directory, facts.model_dump(), options, config=parts.config)

    @override
    def describe(self) -> dict[str, Any]:
        import onnxruntime

        first = next(iter(self.sessions.values()))
        return {
            "backend": self.name,
            "device": "cuda" if any("CUDA" in p or "Tensorrt" in p for p in first.get_providers()) else "cpu",
            "dtype": str(self.facts.get("dtype", "float32")),
            "threads": self.threads,
            "providers": list(first.get_providers()),
            "graph": self.kind,
            "exporter": self.facts.get("exporter"),
            "fusions": self.facts.get("fusions") or {},
            "graph_optimization": self.settings.graph_optimization,
            "onnxruntime": onnxruntime.__version__,
        }


def _refuse_accuracy_level(settings: OrtSettings, why: str) -> None:
    """``ConfigError`` when ``backend_options`` asked for an ``accuracy_level`` this model cannot take.

    The option only chooses the form of the graph ``Model.load("x.gguf")`` builds from the file's
    own blocks; silently ignoring it elsewhere would let a user believe a model runs int8
    activations (or float32 math) when it does not.
    """
    if settings.accuracy_level is not None:
        raise ConfigError(
            f"backend_options accuracy_level={settings.accuracy_level} applies to Model.load('model.gguf') on the "
            f"CPU (the file's own blocks); {why}. To change an ONNX Runtime model built from a GGUF file, "
            f"compress it with 'ort-gguf-native:accuracy_level={settings.accuracy_level}'"
        )


def graph_bytes(path: Path) -> int:
    """Size of an ONNX graph file plus the external data files it references (``model.onnx.data`` ...)."""
    return sum((path.parent / name).stat().st_size for name in graph_files(path))
