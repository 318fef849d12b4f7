"""Reading a model's config and tokenizer as data, without torch (for ONNX Runtime text generation).

In transformers 5 every config class and ``AutoTokenizer`` import torch (about 0.8 s and 200 MB),
while ``PreTrainedTokenizerFast`` does not (and ``LightTokenizer`` needs no transformers at all). A
model that ONNX Runtime runs needs from its config only a few facts, and from its tokenizer what the
generic fast tokenizer does, so the GGUF loader (on a warm cache) and the artifact loader (for a
saved ONNX Runtime text-generation model) read them with :class:`CachedConfig` and
:func:`generic_fast_tokenizer` instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from typing_extensions import override

from aikit_formats._quiet import quiet_transformers
from aikit_formats.light_tokenizer import LightTokenizer, light_settings

__all__ = ["GENERIC_TOKENIZERS", "CachedConfig", "generic_fast_tokenizer", "read_config"]

# Tokenizer classes that ``transformers.PreTrainedTokenizerFast`` is (transformers 5 names the generic
# fast tokenizer ``TokenizersBackend``): loading those directly is what ``AutoTokenizer`` does, without
# the auto module. Any other class needs ``AutoTokenizer``.
GENERIC_TOKENIZERS = frozenset({"TokenizersBackend", "PreTrainedTokenizerFast"})


class CachedConfig:
    """A model's ``config.json`` as data: attribute access to its keys, ``save_pretrained``.

    What a model run by ONNX Runtime holds instead of a transformers config: tasks and backends read
    a few facts (``max_position_embeddings``, ``eos_token_id``, ``architectures``) with
    ``getattr(config, name, default)``, and a saved artifact gets the same ``config.json``. A
    missing key raises ``AttributeError``, so those defaults apply as they do for a transformers
    config without the attribute. Values stay as JSON has them (dictionary keys are strings).
    """

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    @override
    def __repr__(self) -> str:
        return f"CachedConfig(model_type={self._values.get('model_type')!r}, {len(self._values)} keys)"

    def to_dict(self) -> dict[str, Any]:
        """A copy of the values read from ``config.json``."""
        return json.loads(json.dumps(self._values))  # type: ignore[no-any-return]

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Write the values as ``directory/config.json`` (what ``AutoConfig.from_pretrained`` reads back)."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self._values, indent=2, sort_keys=True) + "\n"
        (target / "config.json").write_text(text, encoding="utf-8")


def read_config(folder: Path) -> CachedConfig | None:
    """``folder/config.json`` as a :class:`CachedConfig`, or None when it does not name
    ``max_position_embeddings`` itself (GPT-2's ``n_positions`` reaches that name only through its
    transformers class's ``attribute_map``: such a config needs the class, or the token limit that
    tasks read would be lost). ``ValueError`` when it is not a JSON object, ``OSError`` when unreadable."""
    values = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if not isinstance(values, dict):
        raise ValueError(f"{folder / 'config.json'} does not hold a JSON object")
    if not isinstance(values.get("max_position_embeddings"), int):
        return None
    return CachedConfig(values)


def generic_fast_tokenizer(folder: Path) -> Any:
    """The tokenizer saved in ``folder`` when its ``tokenizer_config.json`` names a generic fast class
    (:data:`GENERIC_TOKENIZERS`): a :class:`~aikit_formats.light_tokenizer.LightTokenizer` when
    every setting is one that class implements, else ``PreTrainedTokenizerFast``. None for any
    other class (use ``AutoTokenizer``). Never runs code from the folder. Errors of a damaged folder
    propagate (``tokenizers`` raises a bare ``Exception`` for a malformed ``tokenizer.json``)."""
    settings = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    if not isinstance(settings, dict) or settings.get("tokenizer_class") not in GENERIC_TOKENIZERS:
        return None
    light = light_settings(folder, settings)
    if light is not None:
        return LightTokenizer(folder, light)
    from transformers import PreTrainedTokenizerFast

    with quiet_transformers():
        return PreTrainedTokenizerFast.from_pretrained(folder, trust_remote_code=False)
