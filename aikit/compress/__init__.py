"""Compression: running a chain of strategies under the accuracy guard (``chain``), its report
(``report``), and the helpers strategy plugins share (``tools``).

Sits above ``aikit.measure`` (the guard's quality measures); ``aikit.optimize`` and ``aikit.cli``
build on it.
"""
