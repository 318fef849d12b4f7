"""Crash-safe saving: a save killed with SIGKILL at any stage leaves the previous artifact or nothing.

A forked child saves a real model over an existing artifact. At the stage under test the child
reports through a pipe and blocks; the parent then kills it with SIGKILL (no cleanup code can run)
and inspects the destination: it must hold the old artifact, byte for byte and hash-verified, or
the complete new one, or (only when there was none before, or between the two renames of the
fallback path) nothing. The next save must recover whatever the killed one left behind.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import aikit
import aikit.model.artifact as artifact_module
from aikit.model.artifact import read_manifest, verify_files

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
HELD = 60.0  # how long a child blocks at its stage; the parent kills it long before


@pytest.fixture(scope="module")
def models(tiny_model_dir: Callable[[str], Path]) -> tuple[aikit.Model, aikit.Model]:
    """Two different models of the same kind: the artifact being replaced, and its replacement."""
    from aikit.testing import save_tiny_model

    old = aikit.Model.load(tiny_model_dir("bert-sequence-classification"), threads=1)
    new_dir = save_tiny_model(
        tiny_model_dir("bert-sequence-classification").parent / "other_seed", "bert-sequence-classification", seed=1
    )
    return old, aikit.Model.load(new_dir, threads=1)


@pytest.fixture(scope="module")
def references(
    models: tuple[aikit.Model, aikit.Model], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, str], dict[str, str]]:
    """The ``files`` map (name -> sha256) of each model's artifact, saved undisturbed."""
    base = tmp_path_factory.mktemp("reference")
    old, new = (read_manifest(m.save(base / str(i)))["files"] for i, m in enumerate(models))
    return old, new


def _hold(pipe: int, stage: str) -> None:
    os.write(pipe, stage.encode() + b"\n")
    time.sleep(HELD)


def _child(dest: Path, model: aikit.Model, stage: str, pipe: int) -> None:
    """Runs in the forked child: arrange to block at ``stage``, then save."""
    import aikit_torch.modules as torch_modules

    if stage == "writing-weights":
        real_save = torch_modules.save_model  # type: ignore[attr-defined]

        def half_written(module: Any, filename: str) -> None:
            real_save(module, filename)
            with open(filename, "r+b") as f:  # what a write cut short looks like on disk
                f.truncate(os.path.getsize(filename) // 2)
            _hold(pipe, stage)

        setattr(torch_modules, "save_model", half_written)  # noqa: B010
    elif stage == "hashing":
        real_hash = artifact_module.hash_file

        def slow_hash(path: Path, chunk: int = 1 << 20) -> str:
            _hold(pipe, stage)
            return real_hash(path, chunk)

        setattr(artifact_module, "hash_file", slow_hash)  # noqa: B010
    elif stage == "before-swap":
        real_swap = artifact_module._swap_into_place

        def held_swap(tmp: Path, target: Path) -> None:
            _hold(pipe, stage)
            real_swap(tmp, target)

        setattr(artifact_module, "_swap_into_place", held_swap)  # noqa: B010
    elif stage == "after-exchange":
        real_exchange = artifact_module._exchange

        def held_exchange(a: Path, b: Path) -> bool:
            swapped = real_exchange(a, b)
            _hold(pipe, stage)
            return swapped

        setattr(artifact_module, "_exchange", held_exchange)  # noqa: B010
    elif stage == "between-renames":  # the fallback where renameat2 is unavailable
        setattr(artifact_module, "_exchange", lambda a, b: False)  # noqa: B010
        real_rename = os.rename
        calls = []

        def rename(src: Any, dst: Any) -> None:
            real_rename(src, dst)
            calls.append(dst)
            if len(calls) == 1:  # dest moved aside, replacement not yet in place
                _hold(pipe, stage)

        setattr(os, "rename", rename)  # noqa: B010 - the child process is killed; nothing else sees it
    model.save(dest)
    os.write(pipe, b"finished\n")


def _save_and_kill(dest: Path, model: aikit.Model, stage: str) -> None:
    """Fork a child that saves ``model`` to ``dest``; SIGKILL it once it reaches ``stage``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            os.close(read_end)
            _child(dest, model, stage, write_end)
        except BaseException as exc:
            os.write(write_end, f"error {type(exc).__name__}: {exc}\n".encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 120)
        reported = os.read(read_end, 4096).decode().strip() if ready else "(timeout)"
        assert reported == stage, f"the child did not reach {stage!r}: {reported}"
    finally:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(read_end)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def _state(dest: Path, refs: tuple[dict[str, str], dict[str, str]]) -> str:
    """``"old"`` / ``"new"`` for a complete, verified artifact; ``"nothing"``; else a failure."""
    if not dest.exists():
        return "nothing"
    manifest = read_manifest(dest)
    verify_files(dest, manifest)  # every hash matches, no file missing or extra
    # The weights say which model it is (tokenizer.json records the last truncation setting used).
    return {refs[0]["model.safetensors"]: "old", refs[1]["model.safetensors"]: "new"}[
        manifest["files"]["model.safetensors"]
    ]


def _exchange_supported(where: Path) -> bool:
    a, b = where / ".probe-a", where / ".probe-b"
    a.mkdir()
    b.mkdir()
    try:
        return artifact_module._exchange(a, b)
    finally:
        a.rmdir()
        b.rmdir()


def _leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir() if p.name != dest.name)


@pytest.fixture
def dest(models: tuple[aikit.Model, aikit.Model], tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/art`` holding the old model's artifact."""
    path = models[0].save(tmp_path / "art")
    yield path
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("writing-weights", "old"),
        ("hashing", "old"),
        ("before-swap", "old"),
        ("after-exchange", "new"),  # renameat2 swapped atomically; only the clean-up was lost
        ("between-renames", "nothing"),  # the fallback: the old artifact waits in a .old sibling
    ],
)
def test_a_killed_save_leaves_a_complete_artifact_or_nothing(
    dest: Path,
    models: tuple[aikit.Model, aikit.Model],
    references: tuple[dict[str, str], dict[str, str]],
    stage: str,
    expected: str,
) -> None:
    if stage == "after-exchange" and not _exchange_supported(dest.parent):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not supported here")
    _save_and_kill(dest, models[1], stage)
    assert _state(dest, references) == expected
    assert _leftovers(dest), "a killed save leaves its temporary folder behind (to be recovered)"
    if expected == "old":
        assert aikit.Model.load(dest).predict("good movie") == models[0].predict("good movie")
    # The next save, of either model, recovers and leaves exactly one complete artifact.
    models[1].save(dest)
    assert _state(dest, references) == "new"
    assert _leftovers(dest) == []
    assert aikit.Model.load(dest).predict("good movie") == models[1].predict("good movie")


def test_recovery_puts_the_previous_artifact_back(
    dest: Path, models: tuple[aikit.Model, aikit.Model], references: tuple[dict[str, str], dict[str, str]]
) -> None:
    """Killed between the fallback's two renames, the old artifact is restored, not lost."""
    _save_and_kill(dest, models[1], "between-renames")
    assert _state(dest, references) == "nothing"

    def fails(tmp: Path) -> dict[str, Any]:
        raise RuntimeError("this save fails after recovering")

    with pytest.raises(RuntimeError, match="after recovering"):
        artifact_module.write_artifact(dest, fails)
    assert _state(dest, references) == "old"
    assert _leftovers(dest) == []


def test_a_save_killed_with_no_previous_artifact_leaves_nothing(
    models: tuple[aikit.Model, aikit.Model], references: tuple[dict[str, str], dict[str, str]], tmp_path: Path
) -> None:
    dest = tmp_path / "fresh"
    _save_and_kill(dest, models[1], "before-swap")
    assert _state(dest, references) == "nothing"
    with pytest.raises(aikit.ModelLoadError, match="does not exist|no loader"):
        aikit.Model.load(dest)


def test_an_exception_during_the_swap_restores_the_previous_artifact(
    dest: Path,
    models: tuple[aikit.Model, aikit.Model],
    references: tuple[dict[str, str], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(artifact_module, "_exchange", lambda a, b: False)
    real_rename = os.rename
    calls: list[Any] = []

    def second_rename_fails(src: Any, dst: Any) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("simulated I/O error while renaming")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", second_rename_fails)
    with pytest.raises(OSError, match="simulated"):
        models[1].save(dest)
    monkeypatch.undo()
    assert _state(dest, references) == "old"
    assert _leftovers(dest) == []


def test_exchange_is_atomic_on_linux(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("renameat2 is Linux-only")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a", encoding="utf-8")
    (b / "x").write_text("b", encoding="utf-8")
    if not artifact_module._exchange(a, b):
        pytest.skip("this filesystem does not support RENAME_EXCHANGE")
    assert (a / "x").read_text(encoding="utf-8") == "b" and (b / "x").read_text(encoding="utf-8") == "a"
    with pytest.raises(FileNotFoundError):
        artifact_module._exchange(a, tmp_path / "missing")
