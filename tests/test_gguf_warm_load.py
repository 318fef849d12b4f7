"""A warm ``Model.load("x.gguf")``: ONNX Runtime opens the cached graph without torch or the float32 module.

The GGUF loader reads the cached tokenizer (``LightTokenizer``: the ``tokenizers`` library, no
transformers) and ``config.json`` and
defers the module (``ModelParts.module_loader``); plugin registration and ``backend="auto"`` import
no torch. Checked in a fresh process (what was imported, peak resident memory, tokens), against the
float32 torch model's greedy tokens, and the warm tokenizer against ``AutoTokenizer`` on the same
cache entry (chat template, ids, decoding).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import aikit
from aikit.contracts.options import BackendOptions

pytest.importorskip("onnxruntime")
pytest.importorskip("gguf")

from aikit_formats.gguf import _cached_parts, cache_root
from aikit_formats.light import CachedConfig, read_config
from aikit_formats.light_tokenizer import LightTokenizer

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["The capital of France is", "Explain in a few sentences why the sky is blue."]
# Peak resident memory of the fresh process below (load, two predicts, one stream; read before it
# saves and reloads, which opens a second graph). Measured 222 MB with this path on the 2-core test
# machine (261 MB while the tokenizer came through transformers and the manifest schema was built
# at import; 593 MB with torch, transformers' modelling code and the float32 module): the bound
# leaves ~50% headroom for allocator and library noise and still fails if any of those comes back.
PEAK_RSS_BOUND_MB = 330

_CHILD = """
import json, sys
import aikit
from aikit.defaults import default_model_path

model = aikit.Model.load(default_model_path("smollm2"))
prompts = json.loads(sys.argv[1])
ids = [list(model.predict(p, max_new_tokens=24).token_ids) for p in prompts]
streamed = "".join(model.stream(prompts[0], max_new_tokens=24))
status = open("/proc/self/status").read().splitlines()
peak = next((int(x.split()[1]) / 1024 for x in status if x.startswith("VmHWM:")), None)
reloaded = aikit.Model.load(model.save(sys.argv[2]))  # a saved artifact reloads without torch too
reloaded_ids = list(reloaded.predict(prompts[0], max_new_tokens=24).token_ids)
print(json.dumps({
    "ids": ids,
    "streamed": streamed,
    "text": model.predict(prompts[0], max_new_tokens=24).text,
    "backend": model.backend_name,
    "reloaded": [reloaded.backend_name, type(reloaded.parts.config).__name__, reloaded_ids],
    "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")),
    "modelling": sorted(m for m in sys.modules if m.startswith("transformers.") and ".modeling_" in m),
    "peak_mb": peak,
}))
"""


@pytest.fixture(scope="module")
def warm_default(smollm2_path: Any) -> aikit.Model:
    """``Model.load(gguf)`` once in this process, so the cache (``$AIKIT_CACHE_DIR``) is warm for the others."""
    return aikit.Model.load(smollm2_path)


def _env() -> dict[str, str]:
    paths = [str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak RSS from /proc (Linux)")
def test_warm_load_imports_no_torch_stays_small_and_gives_the_float32_tokens(
    warm_default: aikit.Model, smollm2: Any, tmp_path: Path
) -> None:
    assert warm_default.backend_name == "onnxruntime"
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(PROMPTS), str(tmp_path / "saved")],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    child = json.loads(done.stdout.strip().splitlines()[-1])
    assert child["backend"] == "onnxruntime"
    assert child["torch"] == [], "a warm GGUF load imported torch"
    assert child["modelling"] == [], "a warm GGUF load imported transformers' modelling code"
    assert child["peak_mb"] is not None and child["peak_mb"] < PEAK_RSS_BOUND_MB, child["peak_mb"]
    # greedy tokens of the warm path are the float32 model's (torch, from the same cache entry)
    assert child["ids"] == [list(smollm2.predict(p, max_new_tokens=24).token_ids) for p in PROMPTS]
    assert child["streamed"] == child["text"]
    assert child["reloaded"] == ["onnxruntime", "CachedConfig", child["ids"][0]]


@pytest.mark.slow
def test_warm_tokenizer_is_the_auto_tokenizer(warm_default: aikit.Model) -> None:
    import transformers

    folder = cache_root() / str(warm_default.parts.source.sha256)
    warm = warm_default.parts.tokenizer
    auto = transformers.AutoTokenizer.from_pretrained(folder)
    assert isinstance(warm, LightTokenizer)  # compared in depth in test_light_tokenizer.py
    for attr in ("eos_token_id", "pad_token_id", "bos_token_id", "model_max_length", "chat_template"):
        assert getattr(warm, attr) == getattr(auto, attr), attr
    chat = [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hello! café 東京"}]
    rendered = warm.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert rendered == auto.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    ids = warm(rendered, add_special_tokens=False)["input_ids"]
    assert ids == auto(rendered, add_special_tokens=False)["input_ids"]
    assert warm.decode(ids, skip_special_tokens=True) == auto.decode(ids, skip_special_tokens=True)


@pytest.mark.slow
def test_warm_parts_defer_the_module_until_a_backend_needs_it(warm_default: aikit.Model, smollm2: Any) -> None:
    path = Path(warm_default.parts.source.location)
    digest = str(warm_default.parts.source.sha256)
    parts = _cached_parts(path, digest, warm_default.parts.source)
    assert parts is not None and parts.module is None and parts.payload == "torch"
    assert isinstance(parts.config, CachedConfig) and parts.config.max_position_embeddings == 8192
    module = parts.require_module()
    assert module is parts.module and parts.module_loader is None and parts.require_module() is module
    assert type(parts.config).__name__ == "LlamaConfig"  # the module's transformers config replaces the data one
    # backend="torch" on a warm cache: the same module the float32 fixture runs
    assert smollm2.backend_name == "torch" and type(smollm2.parts.config).__name__ == "LlamaConfig"


@pytest.mark.slow
def test_a_missing_onnx_entry_builds_the_deferred_module_for_the_export(
    warm_default: aikit.Model, monkeypatch: Any
) -> None:
    import aikit_onnxruntime.export.cached as exporting
    from aikit_onnxruntime.gguf.load import native_backend

    seen: list[Any] = []

    class StopBuildError(Exception):
        pass

    def export_parts(parts: aikit.ModelParts, settings: Any) -> Any:
        seen.append(parts.module)
        raise StopBuildError

    monkeypatch.setattr(exporting, "export_parts", export_parts)
    source = warm_default.parts.source
    parts = _cached_parts(Path(source.location), str(source.sha256), source)
    assert parts is not None and parts.module is None
    with pytest.raises(StopBuildError):
        native_backend(parts, BackendOptions(extra={"cache": False}))  # a cache miss: the graph is built
    assert len(seen) == 1 and seen[0] is not None and seen[0] is parts.module


def test_cached_config_reads_like_a_transformers_config(tmp_path: Path) -> None:
    config = CachedConfig({"eos_token_id": 2, "architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    assert config.eos_token_id == 2 and getattr(config, "is_encoder_decoder", False) is False
    with pytest.raises(AttributeError):
        config.max_position_embeddings  # noqa: B018
    config.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    assert config.to_dict() == {"eos_token_id": 2, "architectures": ["LlamaForCausalLM"], "model_type": "llama"}


def test_other_tokenizer_classes_and_incomplete_entries_are_read_in_full(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("AIKIT_CACHE_DIR", str(tmp_path))
    folder = cache_root() / "abc"
    folder.mkdir(parents=True)
    source = aikit.SourceInfo(kind="gguf", location=str(tmp_path / "x.gguf"), sha256="abc")
    assert _cached_parts(tmp_path / "x.gguf", "abc", source) is None  # nothing cached yet
    for name in ("tokenizer.json", "model.safetensors"):
        (folder / name).write_text("{}")
    (folder / "config.json").write_text(json.dumps({"n_positions": 1024, "model_type": "gpt2"}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "TokenizersBackend"}))
    assert read_config(folder) is None  # its limit has another name: the transformers class is needed
    assert _cached_parts(tmp_path / "x.gguf", "abc", source) is None
    (folder / "config.json").write_text(json.dumps({"max_position_embeddings": 64, "model_type": "llama"}))
    config = read_config(folder)
    assert config is not None and config.max_position_embeddings == 64
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    assert _cached_parts(tmp_path / "x.gguf", "abc", source) is None  # a class only AutoTokenizer resolves
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "TokenizersBackend"}))
    assert _cached_parts(tmp_path / "x.gguf", "abc", source) is None  # "{}" is no tokenizer: converted again


def test_the_generic_tokenizer_class_passes_the_artifact_check_without_the_auto_module() -> None:
    from aikit.model.remote_code import _is_tokenizer_class

    assert _is_tokenizer_class("TokenizersBackend") and _is_tokenizer_class("PreTrainedTokenizerFast")
    assert not _is_tokenizer_class("AutoModel")  # still refused: not a tokenizer


def test_registration_and_backend_choice_import_no_torch() -> None:
    code = (
        "import sys\nfrom aikit.plugins.host import get_host\nfrom aikit_cuda import probe\n"
        "host = get_host()\nreasons = {n: c.unavailable_reason() for n, c in host.backends.items()}\n"
        "before = probe.probe()\nimported = 'torch' in sys.modules\nimport torch\n"
        "print(imported, before == probe.probe())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # torch stayed unimported, and the CUDA probe's answer from torch's files is what torch says
    assert done.stdout.split() == ["False", "True"]


@pytest.mark.slow
def test_a_warm_load_marks_its_cache_entries_used(warm_default: aikit.Model, smollm2_path: Any) -> None:
    """The conversion, the decoding graph and the float32 graphs it was built from (the source of the
    file's other forms) are marked used together, so the cache's size bound removes them last."""
    backend: Any = warm_default.backend
    folders = [
        cache_root() / str(warm_default.parts.source.sha256),
        Path(backend.folder),
        Path(str(backend.facts["float_graphs"])),
    ]
    old = time.time() - 86400
    for folder in folders:
        os.utime(folder, (old, old))
    again = aikit.Model.load(smollm2_path)
    assert again.backend_name == "onnxruntime"
    assert all(folder.stat().st_mtime > old + 3600 for folder in folders)
