"""Checks that keep the documentation honest: hooks, public names, errors, environment variables,
CLI commands and included snippets. All fast: they read files and import aikit, no model."""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

import aikit
import aikit.contracts.hookspecs
import aikit.errors

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
SNIPPET = re.compile(r'--8<--\s+"([^"]+)"')


def _hook_functions() -> dict[str, object]:
    return {
        name: fn
        for name, fn in inspect.getmembers(aikit.contracts.hookspecs, inspect.isfunction)
        if name.startswith("aikit_") and hasattr(fn, "aikit_spec")
    }


def hook_signature(name: str, fn: object) -> str:
    """``def name(arg: Type, ...) -> Return`` as written in hookspecs.py (annotations are strings there)."""
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"def {name}({params}) -> {sig.return_annotation}"


def _reference_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(REFERENCE.glob("*.md")))


def test_there_are_hooks_to_check() -> None:
    assert {"aikit_predict", "aikit_choose_backend", "aikit_register_backends"} <= set(_hook_functions())


@pytest.mark.parametrize("hook", sorted(_hook_functions()))
def test_every_hook_is_documented_with_its_exact_signature(hook: str) -> None:
    page = (REFERENCE / "hooks.md").read_text(encoding="utf-8")
    signature = hook_signature(hook, _hook_functions()[hook])
    assert f"## {hook}" in page, f"docs/reference/hooks.md has no section for {hook}"
    assert signature in page, f"docs/reference/hooks.md must show the exact signature:\n{signature}"


@pytest.mark.parametrize("hook", sorted(_hook_functions()))
def test_every_hook_has_a_test(hook: str) -> None:
    """Some test other than this file implements or calls the hook (a plugin package's tests count)."""
    test_files = [*ROOT.joinpath("tests").rglob("test_*.py"), *ROOT.joinpath("examples").rglob("tests/test_*.py")]
    users = [p for p in test_files if p.name != Path(__file__).name and hook in p.read_text(encoding="utf-8")]
    assert users, f"no test mentions the hook {hook}: add one that implements it in a plugin and checks the effect"


@pytest.mark.parametrize("name", sorted(aikit.__all__))
def test_every_public_name_is_in_the_reference(name: str) -> None:
    assert re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)|aikit\.{re.escape(name)}\b", _reference_text()), (
        f"aikit.{name} is public (in aikit.__all__) but no page under docs/reference/ mentions it"
    )


@pytest.mark.parametrize("name", sorted(aikit.errors.__all__))
def test_every_error_class_is_in_the_errors_table(name: str) -> None:
    page = (REFERENCE / "errors.md").read_text(encoding="utf-8")
    assert f"| `{name}` |" in page, f"docs/reference/errors.md has no table row for {name}"


def _environment_variables_in_source() -> set[str]:
    found: set[str] = set()
    for folder in ("aikit", "plugins"):
        for path in ROOT.joinpath(folder).rglob("*.py"):
            found |= set(re.findall(r"\bAIKIT_[A-Z0-9_]+\b", path.read_text(encoding="utf-8")))
    return found


def test_every_environment_variable_is_documented() -> None:
    variables = _environment_variables_in_source()
    assert "AIKIT_LOAD_PLUGINS" in variables  # the scan itself works
    page = (REFERENCE / "environment.md").read_text(encoding="utf-8")
    missing = sorted(v for v in variables if f"`{v}`" not in page)
    assert not missing, f"read by the code but missing from docs/reference/environment.md: {missing}"


def _cli_reference_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("aikit_docs_cli_reference", DOCS / "_hooks" / "cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_reference_covers_every_command_with_help() -> None:
    hook = _cli_reference_module()
    assert hook.MARKER in (REFERENCE / "cli.md").read_text(encoding="utf-8")
    commands = hook.cli_commands()
    assert {"info", "plugins", "predict"} <= set(commands)
    undocumented = [name for name, cmd in commands.items() if not (cmd.help or "").strip()]
    assert not undocumented, f"commands without a help text (their docstring): {undocumented}"
    rendered = hook.render_cli_reference()
    for name in commands:
        assert f"## `aikit {name}" in rendered


def _snippet_references() -> list[tuple[Path, str]]:
    refs = []
    for page in sorted(DOCS.rglob("*.md")):
        refs += [(page, ref) for ref in SNIPPET.findall(page.read_text(encoding="utf-8"))]
    return refs


def test_docs_include_code_from_files_rather_than_copies() -> None:
    refs = _snippet_references()
    assert len(refs) >= 20
    for page, ref in refs:
        path, _, section = ref.partition(":")
        target = ROOT / path
        assert target.is_file(), f"{page.relative_to(ROOT)} includes {path}, which does not exist"
        if section:
            text = target.read_text(encoding="utf-8")
            assert f"--8<-- [start:{section}]" in text and f"--8<-- [end:{section}]" in text, (
                f"{page.relative_to(ROOT)} includes section {section!r} of {path}, which has no such markers"
            )


def test_every_included_file_is_exercised_by_the_test_suite() -> None:
    """Files the docs include must be run or imported by a test, or they could rot unnoticed."""
    tests = "\n".join(p.read_text(encoding="utf-8") for p in ROOT.joinpath("tests").glob("test_*.py"))
    for _, ref in _snippet_references():
        path = Path(ref.partition(":")[0])
        if "plugins/aikit-redact" in path.as_posix():
            continue  # the plugin package is installed and its own tests run by test_docs_plugin_package.py
        if path.parts[:1] == ("tests",) and path.name.startswith("test_"):
            continue  # a snippet taken from a test runs as that test
        assert path.stem in tests, f"no test in tests/ runs {path}"


def test_mkdocs_nav_lists_every_page() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if not p.name.startswith("_")]
    missing = sorted(p for p in pages if p not in nav)
    assert not missing, f"pages not in the mkdocs.yml nav (readers cannot find them): {missing}"


if __name__ == "__main__":  # print the signature lines to paste into docs/reference/hooks.md
    for hook_name, function in sorted(_hook_functions().items()):
        sys.stdout.write(hook_signature(hook_name, function) + "\n")
