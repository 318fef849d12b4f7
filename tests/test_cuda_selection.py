"""CUDA backend on a machine without a GPU: availability, selection, errors, configuration.

Only what cannot exist here (a CUDA build of torch, a GPU) is faked, by patching ``torch.cuda``;
the real-GPU counterparts are in ``test_cuda_gpu.py`` (marker ``gpu``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from aikit_cuda import CudaBackend, CudaOptions
from aikit_cuda import probe as cuda_probe
from typer.testing import CliRunner

import aikit
from aikit.cli import app
from aikit.contracts.options import BackendOptions
from aikit.errors import BackendUnavailableError, ConfigError


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Make torch report a CUDA build; ``fake_cuda(count=2, capability=(9, 0))`` also shows GPUs."""

    def install(*, count: int = 2, capability: tuple[int, int] = (9, 0), build: str = "12.4") -> None:
        monkeypatch.setattr(torch.version, "cuda", build)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Fake GPU")

    return install


# ---------------------------------------------------------------------- what is found
def test_cpu_build_reason_names_what_was_found_and_how_to_install() -> None:
    if torch.version.cuda is not None:
        pytest.skip("this torch is a CUDA build")
    reason = CudaBackend.unavailable_reason()
    assert reason is not None
    assert "looked for a CUDA build of torch" in reason
    assert f"found torch {torch.__version__}" in reason and "built without CUDA" in reason
    assert "pip install torch --index-url https://download.pytorch.org/whl/cu124" in reason


def test_cuda_build_without_gpu_points_at_the_driver(
    fake_cuda: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_cuda(count=0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    reason = CudaBackend.unavailable_reason()
    assert reason is not None
    assert "built for CUDA 12.4" in reason and "no usable GPU" in reason
    assert "nvidia-smi" in reason and "CUDA_VISIBLE_DEVICES=''" in reason
    assert "built without CUDA" not in reason


def test_visible_gpu_makes_the_backend_available(fake_cuda: Callable[..., None]) -> None:
    fake_cuda(count=1)
    assert CudaBackend.unavailable_reason() is None


# ---------------------------------------------------------------------- selection
def test_explicit_cuda_fails_before_reading_the_model(
    tiny_model_dir: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    if CudaBackend.unavailable_reason() is None:
        pytest.skip("a GPU is usable here")
    import aikit.model.model

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was read although the backend cannot run")

    monkeypatch.setattr(aikit.model.model, "_read_source", must_not_run)
    # The reason names what was found: a CPU-only torch build (install a CUDA one) or a CUDA build
    # without a usable GPU (check the driver); which one depends on the torch installed here.
    with pytest.raises(
        BackendUnavailableError,
        match=r"backend 'cuda' cannot run here: looked for .*; found torch .*(pip install torch|nvidia-smi)",
    ):
        aikit.Model.load(tiny_model_dir("bert-embedding"), task="feature-extraction", backend="cuda")


def test_auto_picks_the_cpu_backend_without_a_gpu(tiny_model_dir: Callable[[str], Path]) -> None:
    if CudaBackend.unavailable_reason() is None:
        pytest.skip("a GPU is usable here")
    model = aikit.Model.load(tiny_model_dir("bert-embedding"), task="feature-extraction")
    assert model.backend_name == "torch"


def test_auto_prefers_cuda_when_a_gpu_is_usable(
    tiny_model_dir: Callable[[str], Path], fake_cuda: Callable[..., None]
) -> None:
    from aikit.model.model import _resolve_backend
    from aikit.plugins.host import get_task

    model = aikit.Model.load(tiny_model_dir("llama-causal-lm"))
    task_cls = get_task("text-generation")
    assert _resolve_backend(model.parts, task_cls, "auto", BackendOptions()).name == "torch"
    fake_cuda(count=1)
    assert CudaBackend.priority > aikit.get_backend("torch").priority
    assert _resolve_backend(model.parts, task_cls, "auto", BackendOptions()) is CudaBackend
    assert _resolve_backend(model.parts, task_cls, "auto", BackendOptions(device="cpu")).name == "torch"


def test_info_says_which_backend_auto_picks_and_why(fake_cuda: Callable[..., None]) -> None:
    runner = CliRunner()
    if CudaBackend.unavailable_reason() is not None:
        data = json.loads(runner.invoke(app, ["info", "--json"]).stdout)
        assert data["auto_backend"] == "torch"
        assert data["backends"]["cuda"] == {
            "available": False,
            "reason": CudaBackend.unavailable_reason(),
            "priority": 20,
        }
        text = runner.invoke(app, ["info"]).stdout
        assert "backend cuda: unavailable: looked for a CUDA build of torch" in text
    fake_cuda(count=1)
    data = json.loads(runner.invoke(app, ["info", "--json"]).stdout)
    assert data["auto_backend"] == "cuda" and data["backends"]["cuda"]["available"] is True
    assert "backend='auto' picks: cuda (CUDA GPU found)" in runner.invoke(app, ["info"]).stdout


def test_unknown_device_index_is_a_clear_error(
    tiny_model_dir: Callable[[str], Path], fake_cuda: Callable[..., None]
) -> None:
    fake_cuda(count=2)
    with pytest.raises(
        ConfigError,
        match=r"device 'cuda:2' does not exist: this machine has 2 visible CUDA device\(s\) \(cuda:0 .. cuda:1\)",
    ):
        aikit.Model.load(tiny_model_dir("bert-embedding"), task="feature-extraction", backend="cuda", device="cuda:2")


def test_bad_backend_options_are_rejected_before_touching_the_gpu(
    tiny_model_dir: Callable[[str], Path], fake_cuda: Callable[..., None]
) -> None:
    fake_cuda(count=1)
    folder = tiny_model_dir("bert-embedding")
    with pytest.raises(
        ConfigError, match=r"unknown backend_options complie; valid: attn_implementation, cache_bucket, compile"
    ):
        aikit.Model.load(folder, task="feature-extraction", backend="cuda", backend_options={"complie": True})
    with pytest.raises(ConfigError, match="compile must be True, False or one of default, reduce-overhead"):
        aikit.Model.load(folder, task="feature-extraction", backend="cuda", backend_options={"compile": "fast"})


# ---------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("device", "count", "index"), [(None, 1, 0), ("cuda", 1, 0), ("cuda:0", 1, 0), ("cuda:3", 4, 3)]
)
def test_device_parsing(device: str | None, count: int, index: int) -> None:
    assert cuda_probe.parse_device(device, count) == index


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda:1", r"'cuda:1' does not exist: this machine has 1 visible CUDA device\(s\) \(only cuda:0\)"),
        ("cpu", r"runs on CUDA devices \('cuda' or 'cuda:N'\), got device='cpu'; use backend='torch'"),
        ("cuda:x", r"got device='cuda:x'"),
    ],
)
def test_device_errors(device: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cuda_probe.parse_device(device, 1)


def test_default_dtype_prefers_bfloat16_then_float16_and_honours_requests() -> None:
    from transformers import BertConfig, BertModel, T5Config, T5Model

    bert = BertModel(BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8))
    t5 = T5Model(T5Config(d_model=8, d_ff=8, num_layers=1, num_heads=2, d_kv=4))
    assert cuda_probe.default_dtype(bert, None, bf16=True) == "bfloat16"
    assert cuda_probe.default_dtype(bert, None, bf16=False) == "float16"
    assert cuda_probe.default_dtype(t5, None, bf16=True) == "bfloat16"
    assert cuda_probe.default_dtype(t5, None, bf16=False) == "float32"  # T5 overflows in float16
    assert cuda_probe.default_dtype(bert, "float32", bf16=True) == "float32"


def test_bf16_support_follows_compute_capability(fake_cuda: Callable[..., None]) -> None:
    fake_cuda(capability=(7, 5))
    assert not cuda_probe.bf16_supported(0)
    fake_cuda(capability=(8, 0))
    assert cuda_probe.bf16_supported(0)


def test_cuda_options_defaults_and_validation() -> None:
    plain = CudaOptions.from_mapping({})
    assert plain.compile_mode is None and plain.padding_multiple == 1 and plain.static_cache and plain.pin_memory
    compiled = CudaOptions.from_mapping({"compile": True})
    assert compiled.compile_mode == "reduce-overhead" and compiled.padding_multiple == 64
    assert CudaOptions(compile="max-autotune", pad_to_multiple=1).padding_multiple == 1
    for bad in (
        {"static_cache": "yes"},
        {"cache_bucket": 0},
        {"pad_to_multiple": True},
        {"attn_implementation": "flash"},
    ):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            CudaOptions.from_mapping(bad)
