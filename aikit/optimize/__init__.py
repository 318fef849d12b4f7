"""``Model.optimize`` and its parts: ``Candidate`` (what plugins propose), the search, the report.

``aikit.optimize.search`` holds the algorithm (imported when a search runs, not at ``import aikit``).
"""

from __future__ import annotations

from aikit.contracts.candidate import Candidate
from aikit.optimize._report import CandidateResult, OptimizationReport

__all__ = ["Candidate", "CandidateResult", "OptimizationReport"]
