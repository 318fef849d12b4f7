"""GGUF files (llama.cpp's format), read through transformers' GGUF support and de-quantised."""

from __future__ import annotations

import os
from pathlib import Path

from aikit.errors import MissingDependencyError, ModelLoadError
from aikit.loader import Loader
from aikit.options import LoadOptions
from aikit.parts import ModelParts, SourceInfo

from ._quiet import quiet_transformers
from .huggingface import combined_hash

GGUF_MAGIC = b"GGUF"


def check_gguf(path: Path) -> None:
    """Validate the header before handing the file to a parser: magic bytes and a known version."""
    try:
        with path.open("rb") as f:
            header = f.read(8)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}", source=path) from exc
    if len(header) < 8 or header[:4] != GGUF_MAGIC:
        raise ModelLoadError(f"{path} is not a GGUF file (bad magic bytes {header[:4]!r})", source=path)
    version = int.from_bytes(header[4:8], "little")
    if version not in (2, 3):
        raise ModelLoadError(f"{path}: unsupported GGUF version {version} (expected 2 or 3)", source=path)


class GgufLoader(Loader):
    """A ``.gguf`` file. Weights are de-quantised to float32 for the torch backend.

    The model is rebuilt from its config and state dict so that it can be saved again (transformers
    refuses to ``save_pretrained`` a model that came straight from GGUF).
    """

    name = "gguf"
    description = "GGUF file (de-quantised through transformers)"
    priority = 20

    def detects(self, source: object) -> bool:
        return isinstance(source, (str, os.PathLike)) and str(source).endswith(".gguf") and Path(source).is_file()

    def load(self, source: object, *, task: str | None, options: LoadOptions) -> ModelParts:
        path = Path(os.fspath(source)).resolve()  # type: ignore[arg-type]
        check_gguf(path)
        try:
            import gguf  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError("gguf", feature="loading GGUF files") from exc
        import transformers

        task = task or "text-generation"
        if task not in ("text-generation", "chat", "causal-lm"):
            raise ModelLoadError(f"GGUF files are loaded as text-generation models, not {task!r}", source=path)
        kwargs = {"gguf_file": path.name}
        try:
            with quiet_transformers():
                tokenizer = transformers.AutoTokenizer.from_pretrained(path.parent, **kwargs)
                loaded = transformers.AutoModelForCausalLM.from_pretrained(path.parent, **kwargs)
        except (ValueError, OSError, KeyError, RuntimeError) as exc:
            raise ModelLoadError(f"transformers cannot read {path}: {type(exc).__name__}: {exc}", source=path) from exc
        config = loaded.config
        module = type(loaded)(config)
        module.load_state_dict(loaded.state_dict())
        module.generation_config = loaded.generation_config
        del loaded
        return ModelParts(
            source=SourceInfo(kind=self.name, location=str(path), sha256=combined_hash([path])),
            module=module.eval(),
            config=config,
            tokenizer=tokenizer,
            task_hint="text-generation",
        )
