"""A saved fast tokenizer on the ``tokenizers`` library alone, without transformers.

Importing transformers' tokenizer layer and loading ``PreTrainedTokenizerFast`` costs about 80 MB
and 0.5 s in a process that otherwise holds only ONNX Runtime; the same ``tokenizer.json`` through
``tokenizers.Tokenizer`` plus the chat template through jinja2 costs about 40 MB. For a model that
ONNX Runtime runs (a GGUF file's cached graph, a saved ONNX Runtime text-generation artifact) that
difference is a sixth of the process, so :class:`LightTokenizer` gives those models the part of
the transformers tokenizer interface that aikit uses (calling it on text, ``decode``,
``apply_chat_template``, ``convert_ids_to_tokens``, the special-token ids, ``save_pretrained``)
with transformers' results (tested against ``PreTrainedTokenizerFast`` on the packaged SmolLM2).

It is used only when ``tokenizer_config.json`` holds nothing but the settings it implements
(:data:`UNDERSTOOD_SETTINGS`); any other folder loads with transformers as before. Nothing read
from the folder names code: the chat template runs in jinja2's immutable sandbox, as transformers
runs it.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from typing_extensions import override

__all__ = ["TOKENIZER_FILES", "UNDERSTOOD_SETTINGS", "LightTokenizer", "light_settings"]

# The files a tokenizer folder may hold that this class reads or writes back (save_pretrained copies them).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")

# ``tokenizer_config.json`` keys whose meaning this class implements (``clean_up_tokenization_spaces``
# only when false). ``added_tokens_decoder`` repeats
# ``tokenizer.json``'s added tokens; the ``is_local`` / ``local_files_only`` / ``backend`` keys are
# transformers' bookkeeping of where the files came from. A key outside this set (``add_bos_token``,
# ``add_prefix_space``, ... which change how transformers rebuilds the pipeline) sends the folder to
# transformers.
UNDERSTOOD_SETTINGS = frozenset(
    {
        "tokenizer_class",
        "backend",
        "is_local",
        "local_files_only",
        "bos_token",
        "eos_token",
        "unk_token",
        "pad_token",
        "sep_token",
        "cls_token",
        "mask_token",
        "additional_special_tokens",
        "extra_special_tokens",
        "added_tokens_decoder",
        "model_max_length",
        "chat_template",
        "clean_up_tokenization_spaces",
        "padding_side",
        "truncation_side",
        "model_input_names",
    }
)

_SPECIAL_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
# transformers' value of model_max_length for "no limit" (int(1e30)), used when the config names none.
_NO_LIMIT = int(1e30)


def light_settings(folder: Path, settings: Any = None) -> dict[str, Any] | None:
    """``folder/tokenizer_config.json`` (or ``settings``, already read from it) when
    :class:`LightTokenizer` can load the folder: a ``tokenizer.json`` is there and every setting is one
    it implements; otherwise None."""
    if not (folder / "tokenizer.json").is_file():
        return None
    if settings is None:
        settings = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    if not isinstance(settings, dict) or not set(settings) <= UNDERSTOOD_SETTINGS:
        return None
    if not all(isinstance(settings.get(k, ""), str | dict | None) for k in _SPECIAL_NAMES):
        return None
    # transformers applies the clean-up for some tokenizer models and not others (never for BPE): not copied here
    if settings.get("clean_up_tokenization_spaces", False):
        return None
    # Named template lists and the other template files (chat_template.json, additional_chat_templates/)
    # are transformers' to choose between.
    if not isinstance(settings.get("chat_template", ""), str | None):
        return None
    if (folder / "chat_template.json").exists() or (folder / "additional_chat_templates").exists():
        return None
    return settings


def _content(value: Any) -> str | None:
    """A special token as written in the config: a string, or a serialized ``AddedToken`` (its ``content``)."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


class Encoded(dict[str, Any]):
    """What calling the tokenizer returns: ``input_ids`` / ``attention_mask`` (/ ``offset_mapping``)
    as lists or arrays, like transformers' ``BatchEncoding``; ``encodings`` holds the
    ``tokenizers.Encoding`` objects (their ``overflowing`` says what truncation cut)."""

    encodings: list[Any]


class LightTokenizer:
    """A tokenizer folder (``tokenizer.json`` + ``tokenizer_config.json`` [+ ``chat_template.jinja``])
    read with the ``tokenizers`` library alone.

    Contract: for a folder that :func:`light_settings` accepts, every method here returns what the
    same method of ``transformers.PreTrainedTokenizerFast`` loaded from that folder returns, for the
    arguments listed in its docstring; other arguments raise ``TypeError`` rather than being
    ignored. Calls are serialized by a lock (truncation is a setting of the shared
    ``tokenizers.Tokenizer``).
    """

    def __init__(self, folder: Path, settings: Mapping[str, Any]) -> None:
        from tokenizers import Tokenizer

        self.name_or_path = str(folder)
        self._folder = folder
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._lock = threading.Lock()
        self._specials = {k: _content(settings.get(k)) for k in _SPECIAL_NAMES}
        self.bos_token: str | None = self._specials["bos_token"]
        self.eos_token: str | None = self._specials["eos_token"]
        self.pad_token: str | None = self._specials["pad_token"]
        self.unk_token: str | None = self._specials["unk_token"]
        self.bos_token_id, self.eos_token_id, self.pad_token_id, self.unk_token_id = (
            self._id(t) for t in (self.bos_token, self.eos_token, self.pad_token, self.unk_token)
        )
        extra = settings.get("extra_special_tokens") or settings.get("additional_special_tokens") or []
        self._extra = [c for c in (_content(v) for v in (extra.values() if isinstance(extra, dict) else extra)) if c]
        limit = settings.get("model_max_length")
        self.model_max_length = int(limit) if isinstance(limit, int | float) else _NO_LIMIT
        self.padding_side = str(settings.get("padding_side") or "right")
        self.truncation_side = str(settings.get("truncation_side") or "right")
        self.clean_up_tokenization_spaces = False  # light_settings sends any other value to transformers
        template_file = folder / "chat_template.jinja"
        template = settings.get("chat_template")
        if template_file.is_file():
            template = template_file.read_text(encoding="utf-8")
        self.chat_template: str | None = template if isinstance(template, str) else None
        self._template: Any = None

    # ------------------------------------------------------------------ special tokens
    def _id(self, token: str | None) -> int | None:
        return None if token is None else self._tokenizer.token_to_id(token)

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """The named special tokens that are set (transformers' order: bos, eos, unk, sep, pad, cls, mask)."""
        return {k: v for k, v in self._specials.items() if v is not None}

    @property
    def all_special_tokens(self) -> list[str]:
        """The named special tokens, then the extra ones, each once."""
        return list(dict.fromkeys([*self.special_tokens_map.values(), *self._extra]))

    @property
    def all_special_ids(self) -> list[int]:
        return [i for i in (self._id(t) for t in self.all_special_tokens) if i is not None]

    @property
    def backend_tokenizer(self) -> Any:
        """The ``tokenizers.Tokenizer`` underneath (as transformers' fast tokenizers expose it)."""
        return self._tokenizer

    def __len__(self) -> int:
        return int(self._tokenizer.get_vocab_size(with_added_tokens=True))

    # ------------------------------------------------------------------ text -> ids
    def __call__(
        self,
        text: str | Sequence[str],
        *,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        return_tensors: str | None = None,
        return_attention_mask: bool = True,
        return_token_type_ids: bool | None = None,
        return_offsets_mapping: bool = False,
    ) -> Encoded:
        """Token ids of ``text`` (one string: flat lists; a list: one list per text).

        ``padding``: False, or True / ``"longest"`` (pad to the longest text with the pad token on
        ``padding_side``). ``truncation``: False / None, or True / ``"longest_first"`` with
        ``max_length`` (default ``model_max_length``). ``return_tensors``: None, ``"np"`` or
        ``"pt"`` (the latter imports torch). ``return_token_type_ids`` True is refused (no model run
        this way takes them).
        """
        if return_token_type_ids:
            raise TypeError("LightTokenizer does not return token_type_ids")
        if padding not in (False, True, "longest", "do_not_pad"):
            raise TypeError(f"LightTokenizer pads to the longest text only, not padding={padding!r}")
        if truncation not in (None, False, True, "longest_first", "do_not_truncate"):
            raise TypeError(f"LightTokenizer truncates with 'longest_first' only, not truncation={truncation!r}")
        single = isinstance(text, str)
        texts = [text] if isinstance(text, str) else [str(t) for t in text]
        cut = truncation not in (None, False, "do_not_truncate")
        with self._lock:
            if cut:
                self._tokenizer.enable_truncation(
                    max_length if max_length is not None else self.model_max_length, direction=self.truncation_side
                )
            try:
                encodings = self._tokenizer.encode_batch(texts, add_special_tokens=add_special_tokens)
            finally:
                self._tokenizer.no_truncation()
        ids = [list(e.ids) for e in encodings]
        masks = [list(e.attention_mask) for e in encodings]
        offsets = [list(e.offsets) for e in encodings]
        if padding not in (False, "do_not_pad") and ids:
            width = max(len(row) for row in ids)
            pad = self.pad_token_id if self.pad_token_id is not None else 0
            left = self.padding_side == "left"

            def padded(row: list[Any], value: Any) -> list[Any]:
                fill = [value] * (width - len(row))
                return fill + row if left else row + fill

            ids = [padded(row, pad) for row in ids]
            masks = [padded(row, 0) for row in masks]
            offsets = [padded(row, (0, 0)) for row in offsets]
        out = Encoded(input_ids=ids)
        if return_attention_mask:
            out["attention_mask"] = masks
        if return_offsets_mapping:
            out["offset_mapping"] = offsets
        if return_tensors is not None:
            out = self._as_tensors(out, return_tensors)
        elif single:
            out = Encoded({k: v[0] for k, v in out.items()})
        out.encodings = encodings
        return out

    @staticmethod
    def _as_tensors(values: Encoded, kind: str) -> Encoded:
        import numpy as np

        if kind not in ("np", "pt"):
            raise TypeError(f"LightTokenizer returns numpy ('np') or torch ('pt') tensors, not {kind!r}")
        try:
            arrays = {k: np.asarray(v, dtype=np.int64) for k, v in values.items()}
        except ValueError as exc:  # rows of different lengths
            raise ValueError("texts of different lengths need padding=True to become one tensor") from exc
        if kind == "pt":
            import torch

            return Encoded({k: torch.from_numpy(v) for k, v in arrays.items()})
        return Encoded(arrays)

    # ------------------------------------------------------------------ ids -> text
    def decode(self, ids: Sequence[int] | Any, skip_special_tokens: bool = False) -> str:
        """The text of ``ids`` (a list, or a one-dimensional array or tensor)."""
        tokens = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
        with self._lock:
            text = str(self._tokenizer.decode(tokens, skip_special_tokens=skip_special_tokens))
        return text

    def batch_decode(self, sequences: Sequence[Sequence[int]], skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(ids, skip_special_tokens=skip_special_tokens) for ids in sequences]

    def convert_ids_to_tokens(self, ids: int | Sequence[int]) -> Any:
        """The vocabulary entry of each id (None for an id outside the vocabulary)."""
        if isinstance(ids, int):
            return self._tokenizer.id_to_token(ids)
        return [self._tokenizer.id_to_token(int(i)) for i in ids]

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> Any:
        if isinstance(tokens, str):
            return self._id(tokens)
        return [self._id(t) for t in tokens]

    def get_vocab(self) -> dict[str, int]:
        return dict(self._tokenizer.get_vocab(with_added_tokens=True))

    # ------------------------------------------------------------------ chat
    def apply_chat_template(
        self,
        conversation: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = False,
        tokenize: bool = True,
        return_dict: bool = True,
        **template_values: Any,
    ) -> Any:
        """``conversation`` (a list of messages) rendered with the chat template; with ``tokenize``
        its token ids without added special tokens (a dict with ``input_ids`` and
        ``attention_mask``, or the id list with ``return_dict=False``). Extra keyword arguments reach
        the template as variables, as in transformers; the special tokens are variables too."""
        if self.chat_template is None:
            raise ValueError("this tokenizer has no chat template")
        if self._template is None:
            self._template = _compile(self.chat_template)
        messages = [dict(m) for m in conversation]
        variables = {**self.special_tokens_map, **template_values}
        variables.setdefault("tools", None)
        variables.setdefault("documents", None)
        rendered = str(
            self._template.render(messages=messages, add_generation_prompt=add_generation_prompt, **variables)
        )
        if not tokenize:
            return rendered
        encoded = self(rendered, add_special_tokens=False)
        return dict(encoded) if return_dict else encoded["input_ids"]

    # ------------------------------------------------------------------ files
    def save_pretrained(self, directory: str | Path) -> tuple[str, ...]:
        """Copy the folder's tokenizer files to ``directory`` (byte for byte: they are what was read)."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        written = []
        for name in TOKENIZER_FILES:
            source = self._folder / name
            if source.is_file():
                shutil.copyfile(source, target / name)
                written.append(str(target / name))
        return tuple(written)

    @override
    def __getstate__(self) -> dict[str, Any]:
        """Pickling and ``copy.deepcopy`` (serving keeps a copy for counting tokens): everything but the
        lock and the compiled template, which the copy makes anew."""
        state = dict(self.__dict__)
        state.pop("_lock")
        state["_template"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @override
    def __repr__(self) -> str:
        return f"LightTokenizer({self.name_or_path!r}, vocab={len(self)})"


def _compile(template: str) -> Any:
    """The chat template in the environment transformers renders templates in: jinja2's immutable
    sandbox, ``trim_blocks`` / ``lstrip_blocks``, loop controls, and the same extra names
    (``tojson`` without HTML escaping, ``raise_exception``, ``strftime_now``, a ``namespace`` that
    refuses underscore names)."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from packaging.version import Version

    if Version(jinja2.__version__) < Version("3.1.6"):  # the template comes from a file: no known sandbox escape
        raise ImportError(f"chat templates need jinja2>=3.1.6 (a sandbox fix); found {jinja2.__version__}")

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        value: Any,
        ensure_ascii: bool = False,
        indent: int | None = None,
        separators: Any = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format: str) -> str:
        return datetime.now().strftime(format)

    class TemplateDict:
        """``dict(...)`` and ``dict.fromkeys(...)`` for templates, without the type itself."""

        def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
            return dict(*args, **kwargs)

        def fromkeys(self, *args: Any) -> dict[Any, Any]:
            return dict.fromkeys(*args)

    class Namespace(jinja2.utils.Namespace):
        @override
        def __setitem__(self, name: str, value: Any) -> None:
            _check_name(name)
            super().__setitem__(name, value)

    def namespace(*args: Any, **kwargs: Any) -> Namespace:
        for name in dict(*args, **kwargs):
            _check_name(name)
        return Namespace(*args, **kwargs)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    filters: dict[str, Callable[..., Any]] = env.filters
    filters["tojson"] = tojson
    env.globals.update(
        raise_exception=raise_exception, strftime_now=strftime_now, dict=TemplateDict(), namespace=namespace
    )
    return env.from_string(template)


def _check_name(name: object) -> None:
    import jinja2

    if isinstance(name, str) and name.startswith("_"):
        raise jinja2.exceptions.SecurityError(f"chat templates cannot store underscore-prefixed names ({name!r})")
