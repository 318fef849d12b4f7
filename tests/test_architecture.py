"""The import contract (pyproject.toml ``[tool.importlinter]``) holds: layers import downward only.

``aikit.cli`` > ``aikit.serve`` | ``aikit.optimize`` > ``aikit.compress`` > ``aikit.measure`` >
``aikit.model`` > ``aikit.plugins`` > ``aikit.contracts`` > the foundation modules, and the core
imports no plugin package. docs/explanation/architecture.md draws it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint(config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe is not None, "import-linter is part of the [dev] extra; install it"
    return subprocess.run(
        [exe, "--config", str(config), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_the_import_contract_is_kept() -> None:
    result = _lint(ROOT / "pyproject.toml", ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("importer", ["aikit.contracts.task", "aikit.plugins.host", "aikit.measure.benchmark"])
def test_an_upward_import_breaks_it(tmp_path: Path, importer: str) -> None:
    """The contract has teeth: a copy of the tree with one module importing ``aikit.cli`` fails."""
    shutil.copytree(ROOT / "aikit", tmp_path / "aikit", ignore=shutil.ignore_patterns("__pycache__"))
    module = tmp_path / (importer.replace(".", "/") + ".py")
    module.write_text(module.read_text() + "\n\ndef _upward() -> None:\n    import aikit.cli  # noqa: F401\n")
    config = tmp_path / "contract.toml"
    text = (ROOT / "pyproject.toml").read_text()
    start = text.index("[tool.importlinter]")
    body = text[start:]
    end = body.find("# The core reaches plugins")
    config.write_text(textwrap.dedent(body[:end]).replace("root_packages = [", 'root_packages = ["aikit"]\n#', 1))
    result = _lint(config, tmp_path)
    assert result.returncode != 0
    assert f"{importer} -> aikit.cli" in result.stdout


# Test support may reach into a plugin's private helper: aikit.testing.trained imports Keras the way
# the Keras plugin does, so a test model and the plugin agree on the backend Keras runs on.
_PRIVATE_IMPORTS_ALLOWED = {("aikit.testing.trained", "aikit_keras._import")}


def test_private_modules_are_imported_only_inside_their_package() -> None:
    """A module whose name starts with ``_`` is its package's business: nothing outside imports it.

    So the public surface is what looks public (``aikit.serve.create_app``, not ``aikit.serve._app``).
    """
    import ast

    found = set()
    for top, strip in (("aikit", ROOT), ("plugins", ROOT / "plugins")):
        for path in (ROOT / top).rglob("*.py"):
            if "build" in path.parts:
                continue
            importer = ".".join(path.relative_to(strip).with_suffix("").parts)
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                else:
                    continue
                for name in names:
                    parts = name.split(".")
                    private = next((i for i, p in enumerate(parts) if i and p.startswith("_")), None)
                    if private is None or parts[private].startswith("__"):
                        continue
                    owner, target = ".".join(parts[:private]), ".".join(parts[: private + 1])
                    is_module = any(
                        (base / (target.replace(".", "/") + ".py")).exists() for base in (ROOT, ROOT / "plugins")
                    )
                    if is_module and not (importer == owner or importer.startswith(owner + ".")):
                        found.add((importer, target))
    assert found <= _PRIVATE_IMPORTS_ALLOWED, sorted(found - _PRIVATE_IMPORTS_ALLOWED)
