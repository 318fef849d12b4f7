"""README.md's Python code runs, and the documentation site builds with ``mkdocs build --strict``."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)


def readme_python_blocks() -> list[str]:
    return FENCE.findall(README.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path: Path) -> None:
    if not README.is_file():
        pytest.skip("README.md does not exist yet")
    blocks = readme_python_blocks()
    assert blocks, "README.md has no ```python block to check"
    # One script, in order: later blocks may use names from earlier ones, as a reader's session would.
    script = tmp_path / "readme_blocks.py"
    script.write_text("\n\n".join(blocks), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, f"README.md code failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None:
        pytest.fail("the docs extra is not installed: pip install -e '.[docs]'")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    site = tmp_path / "site"
    hooks = (site / "reference" / "hooks" / "index.html").read_text(encoding="utf-8")
    assert "aikit_predict" in hooks
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "aikit plugins" in cli and "aikit-cli-commands" not in cli  # the generated reference replaced the marker
    html = (site / "tutorial" / "write-a-plugin" / "index.html").read_text(encoding="utf-8")
    tutorial = re.sub(r"<[^>]+>", "", html)  # syntax highlighting splits code into spans
    assert "def aikit_predict" in tutorial and "--8&lt;--" not in tutorial  # snippets were included
