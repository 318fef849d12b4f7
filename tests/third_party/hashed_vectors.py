"""A third-party plugin, as someone outside aikit would write it: its own file format, loader,
device kind, backend, task and compression strategy, declared only through the contracts.

- ``*.hvec.json`` files (``{"dim": 16, "buckets": 64, "seed": 0}``) hold a hashed bag-of-words
  embedding model: each word hashes to a bucket whose vector a seeded generator draws. The loader
  hands them over as payload kind ``"hvec"`` (``ModelParts.payload_kind``).
- The ``hvec-cpu`` backend accepts ``"hvec"`` payloads and runs on devices ``cpu`` and ``toy``
  (a device kind aikit does not know).
- The ``hashed-embeddings`` task declares ``embeds``, its default metrics and ``explain_input``.
- The ``hvec-float16`` strategy stores the table in float16 and runs on ``hvec-cpu`` only.

tests/test_capabilities.py checks that aikit treats all of it exactly as its built-ins.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

import aikit
from aikit.contracts.backend import Backend
from aikit.contracts.loader import Loader
from aikit.contracts.options import BackendOptions, LoadOptions
from aikit.contracts.parts import ModelParts, SourceInfo
from aikit.contracts.results import Embedding
from aikit.contracts.strategy import CompressionConfig, CompressionContext, Strategy
from aikit.contracts.task import Example, Task
from aikit.errors import InputError


def _bucket(word: str, buckets: int) -> int:
    return zlib.crc32(word.lower().encode()) % (buckets - 1) + 1  # 0 is padding


class HvecLoader(Loader):
    name = "hvec"
    description = "hashed bag-of-words vectors (*.hvec.json)"

    def detects(self, source: object) -> bool:
        return isinstance(source, (str, Path)) and str(source).endswith(".hvec.json") and Path(source).is_file()

    def load(self, source: object, *, task: str | None, options: LoadOptions) -> ModelParts:
        spec = json.loads(Path(str(source)).read_text())
        return ModelParts(
            source=SourceInfo(kind=self.name, location=str(source)),
            payload_kind="hvec",
            extras={"hvec": spec},
            task_hint=task or "hashed-embeddings",
        )


class HvecBackend(Backend):
    name = "hvec-cpu"
    accepts = frozenset({"hvec"})
    devices = frozenset({"cpu", "toy"})

    def __init__(self, table: NDArray[Any], options: BackendOptions) -> None:
        self.table = table
        self.options = options

    @classmethod
    def from_parts(cls, parts: ModelParts, options: BackendOptions) -> Backend:
        spec = parts.extras["hvec"]
        rng = np.random.default_rng(spec["seed"])
        table = rng.standard_normal((spec["buckets"], spec["dim"])).astype(np.float32)
        table[0] = 0.0
        return cls(table, options)

    def forward(self, inputs: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        return {"token_vectors": self.table[inputs["input_ids"]].astype(np.float32)}

    def save(self, directory: Path) -> dict[str, Any]:
        np.save(directory / "table.npy", self.table)
        return {"files": ["table.npy"]}

    @classmethod
    def load(cls, directory: Path, parts: ModelParts, state: Mapping[str, Any], options: BackendOptions) -> Backend:
        return cls(np.load(directory / "table.npy"), options)

    def weight_bytes(self) -> int | None:
        return int(self.table.nbytes)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "device": self.options.device or "cpu", "dtype": str(self.table.dtype)}


class HashedEmbeddings(Task):
    name = "hashed-embeddings"
    embeds = True
    default_metrics = ("cosine_agreement",)
    explain_input = "pair"

    def preprocess(self, items: Sequence[Any], *, max_length: int | None) -> list[Example]:
        buckets = self.parts.extras["hvec"]["buckets"]
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item.split():
                raise InputError(f"input {i}: hashed embeddings need a non-empty text, got {item!r}")
            ids = np.array([_bucket(w, buckets) for w in item.split()][: max_length or None], dtype=np.int64)
            features = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            out.append(Example(index=i, length=len(ids), features=features, meta={"words": item.split()}))
        return out

    def token_strings(self, example: Example) -> tuple[list[str], list[bool]]:
        words: list[str] = example.meta["words"][: example.length]
        return words, [False] * len(words)

    def embed_batch(self, outputs: dict[str, NDArray[Any]], mask: NDArray[np.int64]) -> NDArray[np.float32]:
        weights = mask[..., None].astype(np.float32)
        summed = (outputs["token_vectors"] * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1.0, None)
        return (summed / np.clip(np.linalg.norm(summed, axis=1, keepdims=True), 1e-12, None)).astype(np.float32)

    def postprocess(self, outputs: dict[str, NDArray[Any]], examples: Sequence[Example], options: Any) -> list[Any]:
        mask = np.zeros(outputs["token_vectors"].shape[:2], dtype=np.int64)
        for row, example in enumerate(examples):
            mask[row, : example.length] = 1
        return [Embedding(vector=v) for v in self.embed_batch(outputs, mask)]


@dataclass(frozen=True, kw_only=True)
class HvecFloat16(CompressionConfig):
    strategy: ClassVar[str] = "hvec-float16"


class HvecFloat16Strategy(Strategy):
    name = "hvec-float16"
    config_class = HvecFloat16
    backends = frozenset({"hvec-cpu"})

    def apply(self, backend: Backend, config: CompressionConfig, context: CompressionContext) -> Backend:
        assert isinstance(backend, HvecBackend)
        return HvecBackend(backend.table.astype(np.float16), backend.options)


@aikit.hookimpl
def aikit_register_loaders(register: Any) -> None:
    register(HvecLoader)


@aikit.hookimpl
def aikit_register_backends(register: Any) -> None:
    register(HvecBackend)


@aikit.hookimpl
def aikit_register_tasks(register: Any) -> None:
    register(HashedEmbeddings)


@aikit.hookimpl
def aikit_register_strategies(register: Any) -> None:
    register(HvecFloat16Strategy)
