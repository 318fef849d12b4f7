"""The contracts: what a plugin implements and what crosses between plugins and the core.

The abstract bases (``Backend``, ``Task``, ``Strategy``, ``Loader``), the data they exchange
(``ModelParts``, options, results, ``PredictCall``, ``Candidate``) and the hook specifications.
Everything else in aikit builds on this package, and it imports nothing of aikit but
``aikit.errors`` and the other foundation modules (checked by ``tests/test_architecture.py``).

Import from the modules (``from aikit.contracts.backend import Backend``) or, for the public names,
from ``aikit`` itself (``aikit.Backend``); this ``__init__`` stays empty so that importing one
contract does not load them all.
"""
