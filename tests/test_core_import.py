"""``import aikit`` stays light, and the public surface is pinned."""

from __future__ import annotations

import subprocess
import sys

import aikit


def test_import_aikit_does_not_import_torch_or_transformers() -> None:
    code = "import sys, aikit; print(sorted(m for m in ('torch', 'transformers', 'onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


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
