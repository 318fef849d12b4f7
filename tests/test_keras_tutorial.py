"""docs/tutorial/keras-to-served.md: every ```python block runs, in order, as one reader's session
(train a Keras CNN on scikit-learn's digits, load, explain, compress on ONNX Runtime, serve)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial" / "keras-to-served.md"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)


def test_tutorial_blocks_run(tmp_path: Path) -> None:
    for package in ("keras", "captum", "onnxruntime", "sklearn", "fastapi"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"the tutorial needs {package}")
    blocks = FENCE.findall(TUTORIAL.read_text(encoding="utf-8"))
    assert len(blocks) == 5, "one block per tutorial step"
    script = tmp_path / "tutorial.py"
    script.write_text("\n\n".join(blocks), encoding="utf-8")
    env = {**os.environ, "AIKIT_CACHE_DIR": str(tmp_path / "cache"), "KERAS_BACKEND": "torch"}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-4000:]}"
    assert (tmp_path / "digit-explained.png").is_file() and (tmp_path / "digits-served").is_dir()
    last = done.stdout.strip().splitlines()[-1].split()
    assert last[0] == last[-1], done.stdout  # the served model read the digit right
