"""``LightTokenizer`` (``tokenizers`` + jinja2, no transformers) gives ``PreTrainedTokenizerFast``'s results.

Checked on the packaged SmolLM2's tokenizer (as the GGUF loader caches it) and on tokenizers
written here that exercise what SmolLM2's does not: a post-processor that adds tokens, left
padding, truncation, and a chat template using ``namespace``,
``tojson`` and ``raise_exception``. Folders with settings it does not implement load with
transformers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aikit_formats.light import generic_fast_tokenizer
from aikit_formats.light_tokenizer import LightTokenizer, light_settings

from aikit.sample_text import load_sentences

TEXTS = [
    "Hello world!",
    "  leading and trailing spaces  ",
    "Tabs\tand\nnew lines\n\n",
    "café 東京 naïve — “quotes” 🙂",
    "a<|im_end|>b <|im_start|>user",
    "I can't , won't . it's done ?",
    "",
]
CHATS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "Name three primary colours."}],
    [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hello!"}],
    [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3? <|im_end|> café 東京"},
    ],
]
TEMPLATE = (
    "{% set ns = namespace(turns=0) %}{{ bos_token }}"
    "{% for m in messages %}{% if m['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role ' + m['role']) }}{% endif %}{% set ns.turns = ns.turns + 1 %}"
    "[{{ m['role'] }}] {{ m['content'] | tojson }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant {{ ns.turns }}]{% endif %}"
)


def _texts() -> list[str]:
    import pydoc_data.topics

    raw = [text[:400] for _, text in sorted(pydoc_data.topics.topics.items())[:8]]  # code, markup, new lines
    return TEXTS + load_sentences(20) + raw


def _pair(folder: Path) -> tuple[LightTokenizer, Any]:
    from transformers import PreTrainedTokenizerFast

    settings = light_settings(folder)
    assert settings is not None, json.loads((folder / "tokenizer_config.json").read_text())
    return LightTokenizer(folder, settings), PreTrainedTokenizerFast.from_pretrained(folder)


def _same(light: LightTokenizer, full: Any, *, chats: list[list[dict[str, str]]]) -> None:
    texts = _texts()
    for attr in (
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "unk_token_id",
        "model_max_length",
        "chat_template",
        "all_special_ids",
        "all_special_tokens",
        "special_tokens_map",
        "padding_side",
    ):
        assert getattr(light, attr) == getattr(full, attr), attr
    assert len(light) == len(full)
    for special in (True, False):
        for text in texts:
            assert (
                light(text, add_special_tokens=special)["input_ids"]
                == full(text, add_special_tokens=special)["input_ids"]
            ), text
        batch_light = light(texts, add_special_tokens=special, return_offsets_mapping=True)
        batch_full = full(texts, add_special_tokens=special, return_offsets_mapping=True)
        for key in ("input_ids", "attention_mask", "offset_mapping"):
            assert [list(map(tuple, r)) if key == "offset_mapping" else r for r in batch_light[key]] == [
                list(map(tuple, r)) if key == "offset_mapping" else r for r in batch_full[key]
            ], key
    padded_light = light(texts, padding=True, truncation=True, max_length=12, return_tensors="np")
    padded_full = full(texts, padding=True, truncation=True, max_length=12, return_tensors="np")
    for key in ("input_ids", "attention_mask"):
        np.testing.assert_array_equal(padded_light[key], padded_full[key])
        assert padded_light[key].dtype == np.int64
    cut_light = light(texts, truncation=True, max_length=5)
    cut_full = full(texts, truncation=True, max_length=5)
    assert cut_light["input_ids"] == cut_full["input_ids"]
    assert [bool(e.overflowing) for e in cut_light.encodings] == [bool(e.overflowing) for e in cut_full.encodings]
    assert light("one more")["input_ids"] == full("one more")["input_ids"]  # truncation did not stay on
    for text in texts:
        ids = full(text)["input_ids"]
        for skip in (True, False):
            assert light.decode(ids, skip_special_tokens=skip) == full.decode(ids, skip_special_tokens=skip), text
        assert light.decode(np.asarray(ids)) == full.decode(ids)
        assert light.convert_ids_to_tokens(ids) == full.convert_ids_to_tokens(ids)
        tokens = full.convert_ids_to_tokens(ids)
        assert light.convert_tokens_to_ids(tokens) == full.convert_tokens_to_ids(tokens)
    rows = [full(text)["input_ids"] for text in texts]
    for skip in (True, False):
        assert light.batch_decode(rows, skip_special_tokens=skip) == full.batch_decode(rows, skip_special_tokens=skip)
    assert light.get_vocab() == full.get_vocab()
    for chat in chats:
        for generation_prompt in (True, False):
            rendered = light.apply_chat_template(chat, add_generation_prompt=generation_prompt, tokenize=False)
            assert rendered == full.apply_chat_template(chat, add_generation_prompt=generation_prompt, tokenize=False)
            assert (
                light.apply_chat_template(chat, add_generation_prompt=generation_prompt)["input_ids"]
                == full.apply_chat_template(chat, add_generation_prompt=generation_prompt)["input_ids"]
            )


@pytest.mark.slow
def test_smollm2s_cached_tokenizer_reads_as_transformers_reads_it(smollm2: Any) -> None:
    from aikit_formats.gguf import cache_root

    folder = cache_root() / str(smollm2.parts.source.sha256)
    assert isinstance(generic_fast_tokenizer(folder), LightTokenizer)
    light, full = _pair(folder)
    _same(light, full, chats=CHATS)


def _written(tmp_path: Path, **settings: Any) -> Path:
    """A byte-level BPE tokenizer trained here on Python's docs, saved by transformers with ``settings``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "</s>", "<pad>"]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(load_sentences(300), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))]
    )
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", **settings
    )
    fast.chat_template = TEMPLATE
    folder = tmp_path / "tokenizer"
    fast.save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    "settings",
    [
        {"model_max_length": 64},
        {"padding_side": "left", "truncation_side": "left", "clean_up_tokenization_spaces": False},
    ],
)
def test_a_written_tokenizer_reads_as_transformers_reads_it(tmp_path: Path, settings: dict[str, Any]) -> None:
    light, full = _pair(_written(tmp_path, **settings))
    _same(light, full, chats=CHATS)
    import jinja2

    with pytest.raises(jinja2.exceptions.TemplateError, match="unknown role tool"):
        light.apply_chat_template([{"role": "tool", "content": "x"}])


def test_save_pretrained_copies_the_files_and_reloads_the_same(tmp_path: Path) -> None:
    folder = _written(tmp_path, model_max_length=64)
    light, _ = _pair(folder)
    light.save_pretrained(tmp_path / "saved")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "saved" / name).read_bytes() == (folder / name).read_bytes()
    again = generic_fast_tokenizer(tmp_path / "saved")
    assert isinstance(again, LightTokenizer)
    assert again.chat_template == light.chat_template
    assert again(_texts())["input_ids"] == light(_texts())["input_ids"]


def test_settings_it_does_not_implement_go_to_transformers(tmp_path: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    folder = _written(tmp_path, model_max_length=64)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "add_bos_token": True}))
    assert light_settings(folder) is None
    assert isinstance(generic_fast_tokenizer(folder), PreTrainedTokenizerFast)
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "clean_up_tokenization_spaces": True}))
    assert light_settings(folder) is None
    named = [{"name": "default", "template": TEMPLATE}, {"name": "tool_use", "template": TEMPLATE}]
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": named}))
    assert light_settings(folder) is None
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert light_settings(folder) is not None
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": TEMPLATE}))
    assert light_settings(folder) is None
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "tokenizer_class": "LlamaTokenizer"}))
    assert generic_fast_tokenizer(folder) is None  # a class only AutoTokenizer resolves


def test_arguments_it_does_not_implement_are_refused(tmp_path: Path) -> None:
    light, _ = _pair(_written(tmp_path, model_max_length=64))
    with pytest.raises(TypeError, match="padding"):
        light(["a", "b"], padding="max_length")
    with pytest.raises(TypeError, match="token_type_ids"):
        light("a", return_token_type_ids=True)
    with pytest.raises(TypeError, match="tensors"):
        light("a", return_tensors="tf")
    with pytest.raises(ValueError, match="padding=True"):
        light(["a", "a longer text"], return_tensors="np")


def test_the_template_sandbox_holds(tmp_path: Path) -> None:
    import jinja2

    folder = _written(tmp_path, model_max_length=64)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "chat_template.jinja").write_text("{{ messages.__class__.__mro__ }}")
    light = LightTokenizer(folder, config)
    with pytest.raises(jinja2.exceptions.SecurityError):
        light.apply_chat_template(CHATS[0], tokenize=False)
    (folder / "chat_template.jinja").write_text("{% set ns = namespace(_x=1) %}")
    with pytest.raises(jinja2.exceptions.SecurityError, match="underscore"):
        LightTokenizer(folder, config).apply_chat_template(CHATS[0], tokenize=False)


def test_importing_and_loading_it_leaves_transformers_out(tmp_path: Path) -> None:
    folder = _written(tmp_path, model_max_length=64)
    code = (
        "import sys\nfrom pathlib import Path\nfrom aikit_formats.light import generic_fast_tokenizer\n"
        f"tok = generic_fast_tokenizer(Path({str(folder)!r}))\n"
        "tok.apply_chat_template([{'role': 'user', 'content': 'hi'}])\n"
        "print(type(tok).__name__, 'transformers' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["LightTokenizer", "False"]


def test_a_deep_copy_is_independent_and_gives_the_same_results(tmp_path: Path) -> None:
    import copy
    import pickle
    import threading

    light, _ = _pair(_written(tmp_path, model_max_length=64))
    clone = copy.deepcopy(light)  # what serving does for its token-counting tokenizer
    assert clone.backend_tokenizer is not light.backend_tokenizer
    texts = _texts()
    assert clone(texts)["input_ids"] == light(texts)["input_ids"]
    assert clone.apply_chat_template(CHATS[1], tokenize=False) == light.apply_chat_template(CHATS[1], tokenize=False)
    unpickled = pickle.loads(pickle.dumps(light))
    assert unpickled(texts)["input_ids"] == light(texts)["input_ids"] and unpickled.chat_template == light.chat_template
    with light._lock:  # the copy has its own lock: it works while the original is busy
        done = threading.Event()
        threading.Thread(target=lambda: (clone("x"), done.set()), daemon=True).start()
        assert done.wait(10)
