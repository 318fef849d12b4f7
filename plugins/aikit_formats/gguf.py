"""GGUF files (llama.cpp's format), read through transformers' GGUF support and de-quantised.

The first load of a file converts it (tokenizer, config, de-quantised float32 weights) into a
cache folder keyed by its sha256. A later load reads only the tokenizer and the config from there
and defers the float32 module (``ModelParts.module_loader``): ONNX Runtime opening the file's
cached graph (``aikit_onnxruntime.gguf.load``) never builds it, so such a load imports neither
torch nor transformers' modelling code; the torch backend, an export or a strategy builds it
from the cache on first need.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

from typing_extensions import override

from aikit.cache import cache_dir, mark_used, prune
from aikit.contracts.loader import Loader
from aikit.contracts.options import LoadOptions
from aikit.contracts.parts import ModelParts, SourceInfo
from aikit.errors import MissingDependencyError, ModelLoadError
from aikit_formats._quiet import gguf_progress_on_terminals_only, quiet_transformers
from aikit_formats.huggingface import combined_hash
from aikit_formats.light import generic_fast_tokenizer, read_config

logger = logging.getLogger("aikit.formats")

GGUF_MAGIC = b"GGUF"


def check_gguf(path: Path) -> None:
    """Validate the header before handing the file to a parser: magic bytes and a known version."""
    try:
        with path.open("rb") as f:
            header = f.read(24)
        size = path.stat().st_size
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}", source=path) from exc
    if len(header) < 8 or header[:4] != GGUF_MAGIC:
        raise ModelLoadError(f"{path} is not a GGUF file (bad magic bytes {header[:4]!r})", source=path)
    version = int.from_bytes(header[4:8], "little")
    if version not in (2, 3):
        raise ModelLoadError(f"{path}: unsupported GGUF version {version} (expected 2 or 3)", source=path)
    if len(header) < 24:
        raise ModelLoadError(f"cannot read {path}: the GGUF header is truncated ({size} bytes)", source=path)
    tensors, fields = struct.unpack("<QQ", header[8:24])
    # Every tensor entry takes at least 24 bytes and every metadata field at least 13: counts the
    # file cannot hold mean corruption, and must not reach a parser that sizes buffers from them.
    if tensors * 24 + fields * 13 > size:
        raise ModelLoadError(
            f"cannot read {path}: its header declares {tensors} tensors and {fields} metadata fields, "
            f"more than {size} bytes can hold (truncated or corrupt file)",
            source=path,
        )


class GgufLoader(Loader):
    """A ``.gguf`` file. Weights are de-quantised to float32 for the torch backend.

    The model is rebuilt from its config and state dict so that it can be saved again (transformers
    refuses to ``save_pretrained`` a model that came straight from GGUF), and the conversion is
    cached in ``gguf/`` of aikit's cache folder (``aikit.cache.cache_dir``) keyed by the file's sha256.
    """

    name = "gguf"
    description = "GGUF file (de-quantised through transformers)"
    priority = 20

    @override
    def detects(self, source: object) -> bool:
        return isinstance(source, (str, os.PathLike)) and str(source).endswith(".gguf") and Path(source).is_file()

    @override
    def load(self, source: object, *, task: str | None, options: LoadOptions) -> ModelParts:
        path = Path(os.fspath(source)).resolve()  # type: ignore[call-overload]
        check_gguf(path)
        if importlib.util.find_spec("gguf") is None:  # transformers reads GGUF files with it (not imported here)
            raise MissingDependencyError("gguf", feature="loading GGUF files")
        task = task or "text-generation"
        if task not in ("text-generation", "chat", "causal-lm"):
            raise ModelLoadError(f"GGUF files are loaded as text-generation models, not {task!r}", source=path)
        digest = combined_hash([path])
        assert digest is not None
        source_info = SourceInfo(kind=self.name, location=str(path), sha256=digest)
        cached = _cached_parts(path, digest, source_info)
        if cached is not None:
            return cached
        tokenizer, module = _load_cached(path, digest)
        return ModelParts(
            source=source_info,
            module=module.eval(),
            config=module.config,
            tokenizer=tokenizer,
            task_hint="text-generation",
        )


def cache_root() -> Path:
    """Where de-quantised GGUF conversions are kept: ``gguf/`` in aikit's cache folder (``aikit.cache``)."""
    return cache_dir("gguf")


def _load_cached(path: Path, digest: str) -> tuple[Any, Any]:
    """Tokenizer and rebuilt module for ``path``; the slow GGUF conversion runs once per file.

    The conversion (tokenizer rebuild plus de-quantisation) is saved as a plain safetensors folder
    keyed by the GGUF's sha256, written atomically, so later loads take seconds, not a minute.
    """
    import transformers

    folder = cache_root() / digest
    if (folder / "config.json").is_file():
        try:
            with quiet_transformers():
                # aikit wrote this folder from a GGUF (data only): nothing in it is code to run
                tokenizer = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
                module = transformers.AutoModelForCausalLM.from_pretrained(
                    folder, use_safetensors=True, trust_remote_code=False
                )
            mark_used(folder)
            return tokenizer, module
        except (OSError, ValueError) as exc:  # a damaged cache entry is rebuilt, never trusted
            logger.warning("rebuilding the GGUF cache entry %s: %s", folder, exc)
            shutil.rmtree(folder, ignore_errors=True)
    kwargs: dict[str, Any] = {"gguf_file": path.name, "trust_remote_code": False}
    try:
        with quiet_transformers(), gguf_progress_on_terminals_only():
            tokenizer = transformers.AutoTokenizer.from_pretrained(path.parent, **kwargs)
            loaded = transformers.AutoModelForCausalLM.from_pretrained(path.parent, **kwargs)
    except (ValueError, OSError, KeyError, RuntimeError, IndexError, EOFError, struct.error) as exc:
        raise ModelLoadError(f"transformers cannot read {path}: {type(exc).__name__}: {exc}", source=path) from exc
    # transformers refuses to save a model straight from GGUF; a rebuilt one saves normally.
    module = type(loaded)(loaded.config)
    module.load_state_dict(loaded.state_dict())
    module.generation_config = loaded.generation_config
    del loaded
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=folder.parent))
        with quiet_transformers():
            module.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        if folder.exists():  # another process finished the same conversion first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, folder)
            prune(keep=folder)
    except OSError as exc:  # a read-only home must not stop the load
        logger.warning("cannot cache the GGUF conversion in %s: %s", folder, exc)
    return tokenizer, module


_CACHED_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors")


def _cached_parts(path: Path, digest: str, source: SourceInfo) -> ModelParts | None:
    """Parts from a complete cache entry of ``path`` with the float32 module deferred, or None (no
    entry, a config or tokenizer class that needs transformers' ``Auto*`` classes, or a damaged
    entry: the caller reads it in full).

    Reads ``config.json`` as data (``CachedConfig``) and the tokenizer with
    ``aikit_formats.light.generic_fast_tokenizer`` (the ``tokenizers`` library alone when its settings
    allow, else ``PreTrainedTokenizerFast``), so neither torch nor transformers' modelling code is
    imported here.
    """
    folder = cache_root() / digest
    if not all((folder / name).is_file() for name in _CACHED_FILES):
        return None
    try:
        config = read_config(folder)
        if config is None:  # a config whose facts need its transformers class
            return None
        tokenizer = generic_fast_tokenizer(folder)  # aikit wrote this folder from a GGUF: data only
        if tokenizer is None:  # a tokenizer class only AutoTokenizer resolves
            return None
    except Exception as exc:  # tokenizers raises a bare Exception for a damaged tokenizer.json
        # Not fatal: the full read (``_load_cached``) checks the entry again and converts the file anew.
        logger.warning(
            "cannot read the GGUF cache entry %s as data (%s: %s); reading it in full", folder, type(exc).__name__, exc
        )
        return None
    mark_used(folder)
    parts = ModelParts(source=source, config=config, tokenizer=tokenizer, task_hint="text-generation")

    def build_module() -> Any:
        """The float32 module from the cache, as a full read gives it (its transformers config replaces
        the data one; a damaged entry is converted again)."""
        module = _load_cached(path, digest)[1]
        parts.config = module.config
        return module.eval()

    parts.module_loader = build_module
    return parts
