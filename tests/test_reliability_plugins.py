"""Broken third-party plugins are contained: named in errors and in ``aikit plugins``, never fatal.

The plugins are real distributions (``tests/plugins_src/*``, each with a pyproject.toml declaring an
``aikit`` entry point), installed into a temporary site folder in the layout pip gives a wheel
(package + ``*.dist-info`` with ``entry_points.txt``), so ``importlib.metadata`` discovers them
exactly as it discovers installed packages. Nothing is installed into the shared environment:
in-process tests put the folder on ``sys.path``; subprocess tests pass it through ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import aikit
from aikit.plugins.host import PluginHost, reset_host

PLUGINS_SRC = Path(__file__).parent / "plugins_src"
BROKEN = {
    "test_import_error": "import failed: RuntimeError: aikit_test_import_error is broken on purpose",
    "test_register_error": "registration failed: ValueError: aikit_test_register_error is broken on purpose",
    "test_typo_hook": "aikit_register_backend",
}


def install_into(site: Path, project: Path) -> None:
    """Install the pure-Python ``project`` into ``site`` with the files a wheel install writes."""
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    packages = [p for p in project.iterdir() if p.is_dir() and (p / "__init__.py").is_file()]
    for package in packages:
        shutil.copytree(package, site / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    dist_info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\nSummary: {meta['description']}\n",
        encoding="utf-8",
    )
    group = meta["entry-points"]["aikit"]
    lines = "".join(f"{name} = {target}\n" for name, target in group.items())
    (dist_info / "entry_points.txt").write_text(f"[aikit]\n{lines}", encoding="utf-8")
    (dist_info / "top_level.txt").write_text("".join(f"{p.name}\n" for p in packages), encoding="utf-8")
    (dist_info / "INSTALLER").write_text("aikit-tests\n", encoding="utf-8")
    (dist_info / "RECORD").write_text("", encoding="utf-8")


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site folder holding the five test plugin distributions (four broken, one working)."""
    site = tmp_path_factory.mktemp("plugin_site")
    for project in sorted(PLUGINS_SRC.iterdir()):
        if (project / "pyproject.toml").is_file():
            install_into(site, project)
    return site


@pytest.fixture
def broken_host(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginHost]:
    """A fresh process-wide host that autoloads every installed plugin, the broken ones included."""
    monkeypatch.syspath_prepend(str(plugin_site))
    for name in ("AIKIT_DISABLE_PLUGIN_AUTOLOAD", "AIKIT_LOAD_PLUGINS", "AIKIT_BLOCK_PLUGINS", "AIKIT_STRICT_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    host = PluginHost()
    previous = reset_host(host)
    try:
        host.ensure_loaded()
        yield host
    finally:
        reset_host(previous)
        for module in [m for m in sys.modules if m.startswith("aikit_test_")]:
            del sys.modules[module]


def run_aikit(
    plugin_site: Path, *args: str, env: dict[str, str] | None = None, code: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m aikit ARGS`` (or ``python -c CODE``) with the test plugins importable."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AIKIT_")}
    full_env["PYTHONPATH"] = os.pathsep.join([str(plugin_site), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    full_env.update(env or {})
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "aikit", *args]
    return subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=120, check=False)


# ------------------------------------------------------------------ in-process


def test_each_broken_plugin_is_named_with_its_error(broken_host: PluginHost) -> None:
    for name, expected in BROKEN.items():
        info = broken_host.plugins[name]
        assert info.error is not None and expected in info.error, (name, info.error)
        assert info.distribution == f"aikit-test-{name.removeprefix('test_').replace('_', '-')}"
    assert broken_host.plugins["test_predict_error"].error is None


def test_the_other_plugins_keep_working(broken_host: PluginHost) -> None:
    assert broken_host.plugins["test_good"].registered == {"metrics": ["test-exact-match"]}
    assert aikit.get_metric("test-exact-match")(["a", "b"], ["a", "c"]) == 0.5
    assert {"torch"} <= set(broken_host.backends)
    assert {"feature-extraction", "text-classification"} <= set(broken_host.tasks)
    # what the failing registration registered before raising was rolled back
    assert "half-registered-task" not in broken_host.tasks


def test_unknown_name_errors_mention_the_plugins_that_failed(broken_host: PluginHost) -> None:
    with pytest.raises(aikit.UnknownNameError, match="plugins that failed to load: .*test_import_error"):
        aikit.get_task("half-registered-task")


def test_a_plugin_raising_during_predict_is_named(
    broken_host: PluginHost, tiny_model_dir: Callable[[str], Path]
) -> None:
    model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"))
    assert model.predict("good movie").label in ("negative", "positive")  # the wrapper passes this through
    with pytest.raises(RuntimeError, match="broken on purpose") as info:
        model.predict(["good", "please explode"])
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "'test_predict_error'" in notes and "aikit_predict" in notes and "AIKIT_BLOCK_PLUGINS" in notes
    assert model.predict("still fine").label in ("negative", "positive")  # no corrupted state


def test_errors_of_the_core_itself_are_not_blamed_on_a_plugin(
    broken_host: PluginHost, tiny_model_dir: Callable[[str], Path]
) -> None:
    model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"))
    with pytest.raises(aikit.InputError) as info:
        model.predict([3])
    assert not getattr(info.value, "__notes__", None)


# ------------------------------------------------------------------ subprocesses: the real CLI and env switches


def _plugins_json(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_aikit_plugins_command_lists_every_failure_and_keeps_the_rest(broken_host: PluginHost) -> None:
    from typer.testing import CliRunner

    from aikit.cli import app

    text = CliRunner().invoke(app, ["plugins"])
    assert text.exit_code == 0, text.output
    for name, expected in BROKEN.items():
        assert name in text.output and expected in text.output, name
    assert "metrics: test-exact-match" in text.output and "backends: torch" in text.output
    rows = {row["name"]: row for row in json.loads(CliRunner().invoke(app, ["plugins", "--json"]).output)}
    assert rows["test_good"]["error"] is None and rows["test_good"]["version"] == "0.0.1"
    assert {n for n, r in rows.items() if r["error"]} == set(BROKEN)


def test_import_aikit_works_and_stays_light_with_broken_plugins_installed(plugin_site: Path) -> None:
    code = (
        "import sys, aikit\n"
        "assert 'torch' not in sys.modules\n"
        "print(aikit.get_metric('test-exact-match')([1], [1]))\n"
        "print(sorted(n for n, p in aikit.plugins.host.get_host().plugins.items() if p.error))"
    )
    result = run_aikit(plugin_site, code=code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["1.0", str(sorted(BROKEN))]
    assert "aikit plugin 'test_import_error' was not loaded" in result.stderr  # logged, once


# The switches are read when the host starts, so each runs in a fresh interpreter. Autoload is
# off in most of them so that only the named (light) plugins load: fast, and the point under test.
ALL_TEST_PLUGINS = "test_import_error,test_register_error,test_typo_hook,test_predict_error,test_good"


def test_block_plugins_wins_over_load_plugins(plugin_site: Path) -> None:
    env = {
        "AIKIT_DISABLE_PLUGIN_AUTOLOAD": "1",
        "AIKIT_LOAD_PLUGINS": ALL_TEST_PLUGINS,
        "AIKIT_BLOCK_PLUGINS": "test_import_error, test_typo_hook",
    }
    rows = _plugins_json(run_aikit(plugin_site, "plugins", "--json", env=env))
    assert set(rows) == {"aikit.core", "test_register_error", "test_predict_error", "test_good"}


def test_disable_autoload_loads_only_the_named_plugins(plugin_site: Path) -> None:
    env = {"AIKIT_DISABLE_PLUGIN_AUTOLOAD": "1", "AIKIT_LOAD_PLUGINS": "tasks,test_good"}
    rows = _plugins_json(run_aikit(plugin_site, "plugins", "--json", env=env))
    assert set(rows) == {"aikit.core", "tasks", "test_good"}
    assert all(r["error"] is None for r in rows.values())


def test_load_plugins_accepts_a_module_path(plugin_site: Path) -> None:
    env = {"AIKIT_DISABLE_PLUGIN_AUTOLOAD": "1", "AIKIT_LOAD_PLUGINS": "aikit_test_good"}
    rows = _plugins_json(run_aikit(plugin_site, "plugins", "--json", env=env))
    assert set(rows) == {"aikit.core", "aikit_test_good"}
    assert rows["aikit_test_good"]["registered"] == {"metrics": ["test-exact-match"]}


def test_strict_plugins_turns_a_failure_into_an_error(plugin_site: Path) -> None:
    env = {"AIKIT_DISABLE_PLUGIN_AUTOLOAD": "1", "AIKIT_STRICT_PLUGINS": "1"}
    for name, expected in BROKEN.items():
        code = "import aikit\ntry:\n    aikit.plugins.host.get_host()\nexcept aikit.PluginLoadError as e:\n    print(e.plugin, '|', e)"
        result = run_aikit(plugin_site, code=code, env={**env, "AIKIT_LOAD_PLUGINS": f"test_good,{name}"})
        assert result.returncode == 0, result.stderr
        plugin, message = result.stdout.strip().split(" | ", 1)
        assert plugin == name and expected in message
    fine = run_aikit(
        plugin_site, "plugins", "--json", env={**env, "AIKIT_LOAD_PLUGINS": "test_good,test_predict_error"}
    )
    assert {n for n, r in _plugins_json(fine).items() if r["error"]} == set()
