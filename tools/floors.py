"""Print pip constraints that pin every runtime requirement of aikit to its floor.

``tools/compat.sh floors`` installs with these constraints to check that the lower bounds in
``pyproject.toml`` are real: the oldest versions it admits must still pass the suite. Only the
runtime requirements (the core list and the extras a user installs: onnx, quant, serve, eval, ray)
are pinned; test tools and the packaged models float. torch is pinned by the caller, since only one
CPU build of it can be installed on these machines.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

RUNTIME_EXTRAS = ("onnx", "quant", "serve", "eval", "ray")


def floors(pyproject: Path) -> list[str]:
    """``name==version`` for each requirement with a ``>=`` lower bound (torch excluded)."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    texts = list(project["dependencies"])
    for extra in RUNTIME_EXTRAS:
        texts += project["optional-dependencies"][extra]
    pins = []
    for text in texts:
        req = Requirement(text)
        lows = [spec.version for spec in req.specifier if spec.operator == ">="]
        if req.name != "torch" and lows:
            pins.append(f"{req.name}=={lows[0]}")
    return pins


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    sys.stdout.write("".join(f"{pin}\n" for pin in floors(root / "pyproject.toml")))
