"""``Model.explain``: which tokens or pixels a classifier's score depends on, as typed attributions.

An ``Explanation`` holds one input's attributions: one score per token for text classification,
one per pixel (a heat map) for image classification, for the predicted label or a chosen
``target``. Positive scores push the target's probability up, negative ones down. For an
embedding model (``feature-extraction``) an input is a *pair* of texts and the explanation is a
token-by-token matrix: how much each pair of tokens (one from each text) drives their cosine
similarity (``kind="pair"``).

Methods are plugins: an ``Explainer`` subclass registered through the ``aikit_register_explainers``
hook. aikit's own (plugin ``aikit_explain``) are ``integrated-gradients`` (captum; needs a backend
holding a torch module) and ``occlusion`` (gradient-free: it only calls ``backend.forward``, so it
runs on ONNX Runtime too). Both explain the target's *probability*.

``faithfulness`` checks an explanation can be trusted at all: deleting the top-k attributed
tokens (masking the top-k pixels) must lower the target's probability more than deleting k random
ones, on average over the inputs. It reports both drops and can fail. ``model_randomization`` is
Adebayo et al.'s sanity check (2018): the same method on the same inputs with the model's weights
shuffled must give *different* attributions; a method that passes regardless of the weights
(an edge detector) explains the input, not the model.

Pictures: ``Explanation._repr_html_`` (notebooks), ``to_html(path)`` and ``to_png(path)``
(matplotlib, the ``explain`` extra). Costs are bounded by ``ExplainOptions`` (``steps``,
``window``, ``patch``, ``batch_size``); long runs show a progress bar when stderr is a terminal.
"""

from aikit.measure.explain._faithfulness import faithfulness
from aikit.measure.explain._pictures import write_html
from aikit.measure.explain._randomization import (
    RandomizationReport,
    model_randomization,
    randomized_model,
    rank_correlation,
)
from aikit.measure.explain._registry import Explainer, get_explainer, registered_explainers
from aikit.measure.explain._run import explain, pair_embeddings, target_probabilities
from aikit.measure.explain._types import ExplainOptions, Explanation, FaithfulnessReport, Kind

__all__ = [
    "ExplainOptions",
    "Explainer",
    "Explanation",
    "FaithfulnessReport",
    "RandomizationReport",
    "explain",
    "faithfulness",
    "model_randomization",
    "get_explainer",
    "registered_explainers",
    "target_probabilities",
    "Kind",
    "pair_embeddings",
    "rank_correlation",
    "randomized_model",
    "write_html",
]
