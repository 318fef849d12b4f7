"""``import aikit`` stays light, and the public surface is pinned."""

from __future__ import annotations

import subprocess
import sys

import pytest

import aikit

# What a light start must not import: the frameworks, and the parts of aikit that bring numpy and
# the plugins (``import aikit`` measured 0.47 s with them, ~0.03 s without).
HEAVY = ("torch", "transformers", "onnxruntime", "numpy", "aikit.plugins.host", "aikit.model.model")
PLUGIN_PACKAGES = ("aikit_torch", "aikit_cuda", "aikit_onnxruntime", "aikit_tasks", "aikit_explain", "aikit_keras")

_REPORT_MODULES = (
    f"import sys\nprint(sorted(m for m in sys.modules if m in {HEAVY!r} or m.split('.')[0] in {PLUGIN_PACKAGES!r}))\n"
)


def test_import_aikit_does_not_import_torch_or_transformers() -> None:
    code = "import sys, aikit; print(sorted(m for m in ('torch', 'transformers', 'onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_aikit_loads_neither_numpy_nor_the_plugin_host() -> None:
    out = subprocess.run([sys.executable, "-c", "import aikit\n" + _REPORT_MODULES], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["plugins", "--help"], ["info", "--help"], []])
def test_cli_help_and_version_load_no_plugin_and_no_framework(argv: list[str]) -> None:
    """``aikit --help`` lists aikit's commands without loading a plugin (torch took 7.5 s here)."""
    code = f"import sys\nsys.argv = ['aikit', *{argv!r}]\nfrom aikit.cli import main\ntry:\n    main()\n" + (
        "except SystemExit:\n    pass\n" + _REPORT_MODULES
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_lazy_public_names_resolve_to_their_defining_modules() -> None:
    from aikit.model.model import Model
    from aikit.plugins.host import get_host

    assert aikit.Model is Model and aikit.plugins.host.get_host is get_host
    assert {"Model", "Explanation", "get_task"} <= set(dir(aikit))
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        aikit.no_such_name  # noqa: B018


def test_exported_members_are_sorted_and_pinned() -> None:
    assert list(aikit.__all__) == sorted(aikit.__all__)
    for name in aikit.__all__:
        assert hasattr(aikit, name), name
    core = {
        "Model",
        "Backend",
        "Task",
        "Loader",
        "Strategy",
        "CompressionConfig",
        "hookimpl",
        "AikitError",
        "UnknownNameError",
        "ModelLoadError",
        "InputError",
        "Embedding",
        "Classification",
        "Generation",
        "TokenTags",
        "GenerationOptions",
        "BackendOptions",
        "ImagePreprocess",
    }
    assert core <= set(aikit.__all__)


def test_py_typed_marker_ships() -> None:
    from importlib.resources import files

    assert files("aikit").joinpath("py.typed").is_file()


def test_no_public_name_is_shadowed_by_a_submodule_of_the_same_name() -> None:
    """Importing ``aikit.X`` sets the attribute ``aikit.X`` to the module, replacing a lazily loaded
    public name ``X`` (``aikit.compare`` became a module once ``aikit.compare``'s module was imported)."""
    from pathlib import Path

    import aikit

    package = Path(aikit.__file__).parent
    lazy = aikit._LAZY  # type: ignore[attr-defined]
    clashes = sorted(n for n in lazy if (package / f"{n}.py").exists() or (package / n / "__init__.py").exists())
    assert clashes == []
