"""The tutorial, as one script: load MiniLM, compress it to int8, check quality, benchmark, save.

    python examples/quickstart.py [OUTPUT_FOLDER]

Every step of ``docs/tutorial/first-model.md`` is included from this file, and the test suite
runs it, so the tutorial cannot drift from what works.
"""

# ruff: noqa: E402  (a tutorial in one file: each step imports what it introduces)

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

# --8<-- [start:load]
import aikit
from aikit.defaults import default_model_path

model = aikit.Model.load(default_model_path("minilm"), task="feature-extraction")
print(model)  # <aikit.Model task='feature-extraction' backend='torch' source='...'>
# --8<-- [end:load]

# --8<-- [start:predict]
result = model.predict("aikit makes models smaller")
print(type(result).__name__, len(result))  # Embedding 384

sentences = ["A cat sits on the mat.", "A kitten rests on a rug.", "Stock prices fell sharply today."]
vectors = model.embed(sentences)  # one unit-length row per sentence
print((vectors @ vectors.T).round(2))  # the two cat sentences are far more similar to each other
# --8<-- [end:predict]

# --8<-- [start:compress]
small = model.compress("int8-dynamic")  # a new model; `model` is untouched
print(small.compression_report)
# --8<-- [end:compress]

# --8<-- [start:quality]
import numpy as np

texts = [
    "The train to Edinburgh leaves at nine.",
    "Photosynthesis turns light into chemical energy.",
    "Please restart the router and try again.",
    "The defendant was found not guilty.",
] * 4
before, after = model.embed(texts), small.embed(texts)
agreement = np.sum(before * after, axis=1)  # cosine similarity: both are unit-length
print(f"cosine(original, int8): mean {agreement.mean():.4f}, worst {agreement.min():.4f}")
# --8<-- [end:quality]

# --8<-- [start:benchmark]
from aikit.measure.benchmark import benchmark

for candidate in (model, small):
    report = benchmark(candidate, texts, batch_sizes=(1, 16), repeats=3)
    print(report)
# --8<-- [end:benchmark]

# --8<-- [start:save]
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "minilm-int8"
small.save(out)
again = aikit.Model.load(out)  # no arguments needed: the manifest records task, backend, compression
np.testing.assert_allclose(again.embed(texts), after, atol=1e-5)
print(f"saved to {out} and reloaded: {again}")
# --8<-- [end:save]
