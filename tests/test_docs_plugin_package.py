"""The third-party plugin package of the plugin tutorial (examples/plugins/aikit-redact), installed
with pip into this environment, discovered through its entry point, and working."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import aikit
from aikit.testing import fresh_host

PACKAGE = Path(__file__).resolve().parents[1] / "examples" / "plugins" / "aikit-redact"


@pytest.fixture(scope="module")
def installed_redact(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """pip-install aikit-redact (from a copy, so no build files land in the repository), then uninstall.

    Module-scoped rather than session-scoped: while installed, the plugin redacts the inputs of
    every model in every process of this environment, which other tests must not see.
    """
    source = tmp_path_factory.mktemp("redact") / "aikit-redact"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "install", "--quiet", "--no-deps", "--no-build-isolation", str(source)],
        check=True,
        capture_output=True,
    )
    importlib.invalidate_caches()
    try:
        yield source
    finally:
        subprocess.run([*pip, "uninstall", "--yes", "--quiet", "aikit-redact"], check=False, capture_output=True)
        sys.modules.pop("aikit_redact", None)
        importlib.invalidate_caches()


def test_aikit_plugins_lists_it_through_its_entry_point(installed_redact: Path) -> None:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "aikit"), "plugins", "--json"],  # the installed console script
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    plugins = {p["name"]: p for p in json.loads(out[out.index("[") :])}
    assert plugins["redact"]["module"] == "aikit_redact"
    assert plugins["redact"]["distribution"] == "aikit-redact"
    assert plugins["redact"]["version"] == "0.1.0"
    assert plugins["redact"]["error"] is None


def test_it_redacts_inputs_once_installed(installed_redact: Path, tiny_model_dir: Callable[[str], Path]) -> None:
    with fresh_host() as host:  # only the installed entry points: nothing added by hand
        assert host.plugins["redact"].distribution == "aikit-redact"
        model = aikit.Model.load(tiny_model_dir("bert-embedding"))
        raw = model.predict("ring me on 555-123-4567")
        masked = model.predict("ring me on [PHONE]")
        host.remove_plugin("redact")
        unmasked = model.predict("ring me on 555-123-4567")
    np.testing.assert_array_equal(raw.vector, masked.vector)
    assert not np.array_equal(unmasked.vector, masked.vector)


@pytest.mark.slow
def test_its_own_test_suite_passes_against_the_installed_package(installed_redact: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(installed_redact / "tests")],
        cwd=installed_redact,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout
