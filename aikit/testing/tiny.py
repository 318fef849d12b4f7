"""Tiny, randomly initialised models built from configs, saved as real Hugging Face folders.

They load through the same code paths as real checkpoints but take milliseconds, so plugin
authors (and aikit's own tests) can exercise every task offline. Weights are seeded: the same
call gives the same model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typing_extensions import override

__all__ = ["TINY_KINDS", "TINY_WORDS", "save_tiny_model", "tiny_tokenizer"]  # and TinyCNN, built lazily below

TINY_WORDS = [
    "the",
    "a",
    "an",
    "is",
    "are",
    "was",
    "be",
    "to",
    "of",
    "and",
    "in",
    "on",
    "for",
    "with",
    "this",
    "that",
    "it",
    "as",
    "at",
    "by",
    "from",
    "or",
    "not",
    "no",
    "yes",
    "good",
    "bad",
    "great",
    "terrible",
    "movie",
    "film",
    "book",
    "paris",
    "london",
    "france",
    "england",
    "city",
    "river",
    "water",
    "fire",
    "cat",
    "dog",
    "bird",
    "fish",
    "red",
    "green",
    "blue",
    "happy",
    "sad",
    "fast",
    "slow",
    "big",
    "small",
    "hello",
    "world",
    "model",
    "data",
    "text",
    "john",
    "mary",
    "alice",
    "bob",
    "google",
    "apple",
    "monday",
    "friday",
    "one",
    "two",
    "three",
    "four",
    "five",
    "what",
    "where",
    "who",
    "how",
]
TINY_KINDS = (
    "bert-embedding",
    "bert-sequence-classification",
    "bert-token-classification",
    "llama-causal-lm",
    "t5-seq2seq",
    "vit-image-classification",
)
_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def tiny_tokenizer(*, kind: str = "bert") -> Any:
    """A word-level fast tokenizer over a small fixed vocabulary (no download)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "<|user|>",
        "<|assistant|>",
        "<|system|>",
        "<|end|>",
        "</s>",
    ]
    vocab = {tok: i for i, tok in enumerate(specials + list(TINY_WORDS) + [".", ",", "?", "!"])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    if kind == "bert":
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
        )
        return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
            tokenizer_object=tok,
            unk_token="[UNK]",
            pad_token="[PAD]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            mask_token="[MASK]",
            model_max_length=64,
        )
    if kind == "t5":
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
        return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
            tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="</s>", model_max_length=64
        )
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="<|end|>", model_max_length=128
    )
    fast.chat_template = _CHAT_TEMPLATE
    return fast


def _bert_config(**extra: Any) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=128,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        **extra,
    )


def save_tiny_model(directory: str | Path, kind: str, *, seed: int = 0) -> Path:
    """Write a tiny model of ``kind`` (one of ``TINY_KINDS``) as a Hugging Face folder; return its path."""
    import torch
    import transformers

    if kind not in TINY_KINDS:
        raise ValueError(f"unknown tiny model kind {kind!r}; choose one of {', '.join(TINY_KINDS)}")
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer: Any = None
    if kind == "bert-embedding":
        model: Any = transformers.BertModel(_bert_config())
        tokenizer = tiny_tokenizer(kind="bert")
        (path / "modules.json").write_text(
            json.dumps(
                [
                    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
                ]
            )
        )
        (path / "1_Pooling").mkdir(exist_ok=True)
        (path / "1_Pooling" / "config.json").write_text(
            json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
        )
        (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 48, "do_lower_case": False}))
    elif kind == "bert-sequence-classification":
        config = _bert_config(id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
        config.architectures = ["BertForSequenceClassification"]
        model = transformers.BertForSequenceClassification(config)
        tokenizer = tiny_tokenizer(kind="bert")
    elif kind == "bert-token-classification":
        labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
        config = _bert_config(id2label=dict(enumerate(labels)), label2id={v: i for i, v in enumerate(labels)})
        config.architectures = ["BertForTokenClassification"]
        model = transformers.BertForTokenClassification(config)
        tokenizer = tiny_tokenizer(kind="bert")
    elif kind == "llama-causal-lm":
        tokenizer = tiny_tokenizer(kind="llama")
        config = transformers.LlamaConfig(
            vocab_size=128,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=None,
            tie_word_embeddings=True,
        )
        config.architectures = ["LlamaForCausalLM"]
        model = transformers.LlamaForCausalLM(config)
    elif kind == "t5-seq2seq":
        tokenizer = tiny_tokenizer(kind="t5")
        config = transformers.T5Config(  # type: ignore[call-arg]
            vocab_size=128,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=4,
            decoder_start_token_id=tokenizer.pad_token_id,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        config.architectures = ["T5ForConditionalGeneration"]
        model = transformers.T5ForConditionalGeneration(config)
    else:  # vit-image-classification
        labels = ["cat", "dog", "bird"]
        config = transformers.ViTConfig(
            image_size=32,
            patch_size=8,
            num_channels=3,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            id2label=dict(enumerate(labels)),
            label2id={v: i for i, v in enumerate(labels)},
        )
        config.architectures = ["ViTForImageClassification"]
        model = transformers.ViTForImageClassification(config)
        # transformers >= 5.x names the PIL-backed processor ViTImageProcessorPil (ViTImageProcessor then
        # wants torchvision); earlier 5.x releases have only ViTImageProcessor, PIL-backed.
        processor_class = getattr(transformers, "ViTImageProcessorPil", None) or transformers.ViTImageProcessor
        processor = processor_class(size={"height": 32, "width": 32})
        processor.save_pretrained(path)
    model.eval()
    model.save_pretrained(path)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return path


def _cnn_base() -> type:
    import torch

    class _TinyCNN(torch.nn.Module):
        """A small convolutional classifier for 1x8x8 images (scikit-learn's digits), 10 classes."""

        def __init__(self, classes: int = 10) -> None:
            super().__init__()
            self.features = torch.nn.Sequential(
                torch.nn.Conv2d(1, 8, 3, padding=1),
                torch.nn.ReLU(),
                torch.nn.MaxPool2d(2),
                torch.nn.Conv2d(8, 16, 3, padding=1),
                torch.nn.ReLU(),
            )
            self.head = torch.nn.Sequential(
                torch.nn.Flatten(), torch.nn.Linear(16 * 4 * 4, 32), torch.nn.ReLU(), torch.nn.Linear(32, classes)
            )

        @override
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.features(x))  # type: ignore[no-any-return]

    return _TinyCNN


def __getattr__(name: str) -> Any:
    # TinyCNN subclasses torch.nn.Module; build it on first access so importing this module stays torch-free.
    if name == "TinyCNN":
        cls = _cnn_base()
        cls.__name__ = cls.__qualname__ = "TinyCNN"
        cls.__module__ = __name__
        globals()["TinyCNN"] = cls
        return cls
    raise AttributeError(name)
