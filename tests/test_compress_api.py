"""Compression API: parsing, checks before work, chaining, reports, errors (tiny real models)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import aikit
from aikit.compress.chain import parse_strategy
from aikit.compress.report import CompressionReport
from aikit.testing import fresh_host

TEXTS = [f"sentence {i}: the {'quick ' * (i % 5)}brown fox jumps over {i} lazy dogs" for i in range(24)]


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Any) -> aikit.Model:
    return aikit.Model.load(tiny_model_dir("bert-embedding"), task="feature-extraction")


def test_import_aikit_quant_and_prune_stay_torch_free() -> None:
    import subprocess
    import sys

    code = (
        "import sys, aikit; aikit.quant.Int8Dynamic(); aikit.prune.Structured(ffn=0.3); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("int8-dynamic", aikit.quant.Int8Dynamic()),
        (
            "int8-dynamic:per_channel=false,exclude=a.b|c",
            aikit.quant.Int8Dynamic(per_channel=False, exclude=("a.b", "c")),
        ),
        ("int4-weight-only:group_size=128,method=rtn", aikit.quant.Int4WeightOnly(group_size=128, method="rtn")),
        ("prune-2:4", aikit.prune.SemiStructured()),
        ("prune-structured:ffn=0.3,heads=0.25,layers=1", aikit.prune.Structured(ffn=0.3, heads=0.25, layers=1)),
        ("prune-magnitude:sparsity=0.6,scope=layer", aikit.prune.Magnitude(sparsity=0.6, scope="layer")),
    ],
)
def test_shorthands_parse_into_configs(text: str, expected: aikit.CompressionConfig) -> None:
    assert parse_strategy(text) == expected


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        ("int9-dynamic", aikit.UnknownNameError, "int8-dynamic"),
        ("int8-dynamic:colour=red", aikit.ConfigError, "per_channel"),
        ("int8-dynamic:per_channel", aikit.ConfigError, "key=value"),
        ("int4-weight-only:group_size=48", aikit.ConfigError, "group_size"),
        ("prune-structured", aikit.ConfigError, "nothing to remove"),
        ("prune-magnitude:sparsity=1.5", aikit.ConfigError, "sparsity"),
    ],
)
def test_bad_shorthands_raise_clear_errors(text: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        parse_strategy(text)


def test_configs_are_frozen_keyword_only_and_validated() -> None:
    config = aikit.quant.Int8Dynamic()
    with pytest.raises(AttributeError):
        config.per_channel = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        aikit.quant.Int8Dynamic(True)  # type: ignore[misc]
    with pytest.raises(aikit.ConfigError, match="smoothquant"):
        aikit.quant.Int8Dynamic(smoothquant=2.0)
    assert config.to_dict()["strategy"] == "int8-dynamic"


def test_compress_returns_new_model_and_leaves_original_untouched(embedder: aikit.Model) -> None:
    module = embedder.backend.torch_module()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    vectors = embedder.embed(TEXTS[:4])
    small = embedder.compress(
        aikit.prune.Magnitude(sparsity=0.5), "int8-dynamic", calibration=TEXTS, measure_speed=False
    )
    assert small is not embedder and small.backend.torch_module() is not module
    after = module.state_dict()
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)
    np.testing.assert_array_equal(embedder.embed(TEXTS[:4]), vectors)
    assert embedder.transformations == ()
    assert [t["strategy"] for t in small.transformations] == ["prune-magnitude", "int8-dynamic"]
    assert small.transformations[0]["sparsity"] == 0.5


def test_report_measures_size_parameters_quality_and_layers(embedder: aikit.Model) -> None:
    small = embedder.compress("prune-magnitude:sparsity=0.5", "int8-dynamic", calibration=TEXTS, measure_speed=False)
    report = small.compression_report
    assert isinstance(report, CompressionReport)
    assert report.size_after_bytes < 0.45 * report.size_before_bytes
    assert 0.45 < report.parameters_kept < 0.75  # half the Linear weights zeroed; embeddings/norms untouched
    assert set(report.quality) == {"cosine_min", "cosine_mean"} and report.evaluated_items == 6
    assert report.quality_drop == pytest.approx(1 - report.quality["cosine_min"])
    names = {layer.name for layer in report.layers}
    assert "encoder.layer.0.attention.self.query" in names and "embeddings.word_embeddings" in names
    assert all(layer.error is not None and 0 < layer.error < 1 for layer in report.layers)
    assert report.speedup is None and "not measured" in str(report)
    data = json.loads(json.dumps(report.to_dict()))
    assert CompressionReport.from_dict(data).to_dict() == report.to_dict()


def test_report_renders_as_rich_table(embedder: aikit.Model) -> None:
    from rich.console import Console

    small = embedder.compress("int8-weight-only", calibration=TEXTS, measure_speed=False)
    console = Console(record=True, width=140)
    console.print(small.compression_report)
    text = console.export_text()
    assert "Compression report" in text and "int8-weight-only" in text and "cosine_min" in text


def test_saved_artifact_keeps_transformations_and_report(embedder: aikit.Model, tmp_path: Path) -> None:
    small = embedder.compress("int8-dynamic", calibration=TEXTS, measure_speed=False)
    back = aikit.Model.load(small.save(tmp_path / "m"))
    assert back.transformations == small.transformations
    assert back.compression_report == small.compression_report.to_dict()


def test_strategy_needing_calibration_refuses_without_it(embedder: aikit.Model) -> None:
    with pytest.raises(aikit.CompressionError, match="needs calibration data"):
        embedder.compress("int8-static")
    with pytest.raises(aikit.CompressionError, match="calibration"):
        embedder.compress("int8-dynamic:smoothquant=0.5")
    with pytest.raises(aikit.CompressionError, match="max_quality_drop needs calibration"):
        embedder.compress("int8-dynamic", max_quality_drop=0.01)


@pytest.mark.parametrize("bad", [[], ["int8-dynamic", 3]])
def test_bad_strategy_lists_raise(embedder: aikit.Model, bad: list[Any]) -> None:
    with pytest.raises(aikit.ConfigError):
        embedder.compress(*bad)


def test_calibration_must_be_a_list(embedder: aikit.Model) -> None:
    with pytest.raises(aikit.ConfigError, match="list of inputs"):
        embedder.compress("int8-dynamic", calibration="one string")
    with pytest.raises(aikit.ConfigError, match="max_quality_drop"):
        embedder.compress("int8-dynamic", calibration=TEXTS, max_quality_drop=1.5)


# --------------------------------------------------------------------- capability checks
@dataclass(frozen=True, kw_only=True)
class OrtOnly(aikit.CompressionConfig):
    strategy: ClassVar[str] = "ort-only-test"


class OrtOnlyStrategy(aikit.Strategy):
    name = "ort-only-test"
    config_class = OrtOnly
    backends: ClassVar[frozenset[str]] = frozenset({"onnxruntime"})
    applied: ClassVar[int] = 0

    def apply(
        self, backend: aikit.Backend, config: aikit.CompressionConfig, context: aikit.CompressionContext
    ) -> aikit.Backend:
        type(self).applied += 1
        return backend


class OrtPlugin:
    @aikit.hookimpl
    def aikit_register_strategies(self, register: Any) -> None:
        register(OrtOnlyStrategy)


def test_backend_capability_is_checked_before_any_work(tiny_model_dir: Any) -> None:
    with fresh_host() as host:
        host.add_plugin(OrtPlugin(), name="ort-only-test")
        assert "ort-only-test" in host.strategies  # the registry takes onnxruntime-only strategies
        model = aikit.Model.load(tiny_model_dir("bert-embedding"), task="feature-extraction")
        with pytest.raises(aikit.CompressionError) as info:
            model.compress("int8-dynamic", "ort-only-test", calibration=TEXTS)
        message = str(info.value)
        assert "onnxruntime" in message and "int8-dynamic" in message and "backend='onnxruntime'" in message
        assert OrtOnlyStrategy.applied == 0


# --------------------------------------------------------------------- slower models warn
@dataclass(frozen=True, kw_only=True)
class Repeat(aikit.CompressionConfig):
    strategy: ClassVar[str] = "repeat-test"


class RepeatStrategy(aikit.Strategy):
    """Really slower: runs the module 30 times per call (a stand-in for a kernel slower than fp32)."""

    name = "repeat-test"
    config_class = Repeat
    backends: ClassVar[frozenset[str]] = frozenset({"torch"})

    def apply(
        self, backend: aikit.Backend, config: aikit.CompressionConfig, context: aikit.CompressionContext
    ) -> aikit.Backend:
        import copy

        import torch

        inner = copy.deepcopy(backend.torch_module())

        class Repeated(type(inner)):  # type: ignore[misc]
            def forward(self, *args: Any, **kwargs: Any) -> Any:
                for _ in range(29):
                    super().forward(*args, **kwargs)
                return super().forward(*args, **kwargs)

        inner.__class__ = Repeated
        assert isinstance(inner, torch.nn.Module)
        return backend.with_module(inner)

    def slowdown_reason(self) -> str:
        return "it runs the model 30 times"


class RepeatPlugin:
    @aikit.hookimpl
    def aikit_register_strategies(self, register: Any) -> None:
        register(RepeatStrategy)


def test_slower_model_warns_loudly_with_reason(tiny_model_dir: Any) -> None:
    with fresh_host() as host:
        host.add_plugin(RepeatPlugin(), name="repeat-test")
        model = aikit.Model.load(tiny_model_dir("bert-embedding"), task="feature-extraction")
        with pytest.warns(aikit.PerformanceWarning, match="SLOWER.*30 times"):
            small = model.compress("repeat-test", calibration=TEXTS)
        report = small.compression_report
        assert report.slower and report.speedup < 0.5 and report.slower_reason == "it runs the model 30 times"
        assert report.throughput_unit == "tokens/s" and report.throughput_before > report.throughput_after
        assert "why slower" in str(report)
