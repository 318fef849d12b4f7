"""Real English sentences for benchmarks: ``aikit.sample_text.load_sentences`` (one home for the corpus)."""

from __future__ import annotations

from aikit.sample_text import load_sentences

__all__ = ["load_sentences"]

if __name__ == "__main__":
    sents = load_sentences()
    lengths = sorted(len(s) for s in sents)
    print(f"{len(sents)} sentences; chars min {lengths[0]}, median {lengths[len(lengths) // 2]}, max {lengths[-1]}")
