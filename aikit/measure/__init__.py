"""Measuring models: speed (``benchmark``), task metrics (``evaluate``), agreement between models
(``comparison``), the quality measures the accuracy guard compares (``quality``), batch sizes, and
explanations (``explain``).

Sits above ``aikit.model``; ``aikit.compress``, ``aikit.optimize``, ``aikit.serve`` and ``aikit.cli``
build on it.
"""
