"""Tamper evidence: ``Model.load`` refuses an artifact whose files differ from its manifest.

Each test starts from a fresh copy of one real saved artifact and changes one thing. Tests that
edit the manifest rewrite its digest too (``_write_manifest``), as an attacker who can write the
folder would, to show that the check under test holds on its own.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import aikit
from aikit.model.artifact import DIGEST_NAME, MANIFEST_NAME, hash_file
from aikit.model.manifest import digest_line


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Callable[[str], Path]) -> Path:
    model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"))
    return model.save(tmp_path_factory.mktemp("artifact") / "classifier")


@pytest.fixture
def artifact(saved: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved, tmp_path / "classifier"))


def _manifest(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((path / MANIFEST_NAME).read_text(encoding="utf-8"))
    return data


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    raw = json.dumps(manifest).encode()
    (path / MANIFEST_NAME).write_bytes(raw)
    (path / DIGEST_NAME).write_text(digest_line(raw), encoding="utf-8")


def test_untouched_copy_loads(artifact: Path) -> None:
    assert aikit.Model.load(artifact).predict("good movie").label in ("negative", "positive")


def test_a_changed_weight_file_is_an_integrity_error(artifact: Path) -> None:
    weights = artifact / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one flipped bit in the last weight
    weights.write_bytes(bytes(data))
    with pytest.raises(aikit.IntegrityError, match=r"'model\.safetensors' was changed after saving") as info:
        aikit.Model.load(artifact)
    assert info.value.file == "model.safetensors"


def test_a_changed_config_file_is_an_integrity_error(artifact: Path) -> None:
    config = artifact / "config.json"
    config.write_text(config.read_text(encoding="utf-8").replace('"negative"', '"NEGATIVE"'), encoding="utf-8")
    with pytest.raises(aikit.IntegrityError, match="'config.json' was changed") as info:
        aikit.Model.load(artifact)
    assert info.value.file == "config.json"


def test_a_missing_file_is_an_integrity_error(artifact: Path) -> None:
    (artifact / "tokenizer.json").unlink()
    with pytest.raises(aikit.IntegrityError, match="'tokenizer.json' listed in the manifest is missing") as info:
        aikit.Model.load(artifact)
    assert info.value.file == "tokenizer.json"


def test_an_extra_file_is_an_integrity_error(artifact: Path) -> None:
    (artifact / "pytorch_model.bin").write_bytes(b"not listed anywhere")
    with pytest.raises(aikit.IntegrityError, match="unexpected file.*pytorch_model.bin") as info:
        aikit.Model.load(artifact)
    assert info.value.file == "pytorch_model.bin"


def test_an_extra_file_in_a_subfolder_is_an_integrity_error(artifact: Path) -> None:
    (artifact / "sub").mkdir()
    (artifact / "sub" / "payload.py").write_text("print('hi')", encoding="utf-8")
    with pytest.raises(aikit.IntegrityError, match="sub/payload.py"):
        aikit.Model.load(artifact)


@pytest.mark.parametrize("name", ["../outside.json", "sub/../../outside.json", "/etc/hostname"])
def test_manifest_paths_cannot_leave_the_folder(artifact: Path, name: str) -> None:
    outside = artifact.parent / "outside.json"
    outside.write_text("{}", encoding="utf-8")
    manifest = _manifest(artifact)
    target = Path(name) if os.path.isabs(name) else outside
    manifest["files"][name] = hash_file(target) if target.is_file() else "0" * 64
    _write_manifest(artifact, manifest)
    with pytest.raises(aikit.IntegrityError, match="points outside the artifact folder") as info:
        aikit.Model.load(artifact)
    assert info.value.file == name
    # the check is about the path, so even verify=False does not let it through
    with pytest.raises(aikit.IntegrityError, match="points outside"):
        aikit.Model.load(artifact, verify=False)


def test_a_symlink_out_of_the_folder_is_refused(artifact: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not part of the model", encoding="utf-8")
    (artifact / "notes.txt").symlink_to(secret)
    manifest = _manifest(artifact)
    manifest["files"]["notes.txt"] = hash_file(secret)  # a consistent manifest does not make it legal
    _write_manifest(artifact, manifest)
    with pytest.raises(aikit.IntegrityError, match="'notes.txt' is a symbolic link") as info:
        aikit.Model.load(artifact)
    assert info.value.file == "notes.txt"
    with pytest.raises(aikit.IntegrityError, match="'notes.txt' is a symbolic link"):
        aikit.Model.load(artifact, verify=False)


def test_verify_false_skips_hashes_and_logs_a_warning(artifact: Path, caplog: pytest.LogCaptureFixture) -> None:
    (artifact / "extra.txt").write_text("unlisted", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="aikit.artifact"):
        model = aikit.Model.load(artifact, verify=False)
    assert model.predict("good").label in ("negative", "positive")
    warnings = [r for r in caplog.records if r.name == "aikit.artifact" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "WITHOUT verifying" in warnings[0].getMessage()
    assert str(artifact) in warnings[0].getMessage()


def test_verification_reads_every_listed_file(artifact: Path) -> None:
    """A file changed but kept at the same size (no cheap size check can catch it) is still found."""
    manifest = _manifest(artifact)
    for name in manifest["files"]:
        copy = Path(shutil.copytree(artifact, artifact.parent / f"t-{name.replace('/', '_')}"))
        path = copy / name
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x20
        path.write_bytes(bytes(data))
        with pytest.raises(aikit.IntegrityError) as info:
            aikit.Model.load(copy)
        assert info.value.file == name


def test_an_edited_manifest_is_an_integrity_error(artifact: Path) -> None:
    manifest_path = artifact / MANIFEST_NAME
    text = manifest_path.read_text(encoding="utf-8")
    manifest_path.write_text(text.replace('"backend": "torch"', '"backend": "torch" '), encoding="utf-8")
    with pytest.raises(aikit.IntegrityError, match="aikit.json was changed after saving") as info:
        aikit.Model.load(artifact)
    assert info.value.file == MANIFEST_NAME


def test_a_malformed_manifest_is_a_clear_load_error(artifact: Path) -> None:
    (artifact / MANIFEST_NAME).write_bytes(b"{not json")
    (artifact / DIGEST_NAME).write_text(digest_line(b"{not json"), encoding="utf-8")
    with pytest.raises(aikit.ModelLoadError, match="cannot read"):
        aikit.Model.load(artifact)
    _write_manifest(artifact, {"format_version": 1, "task": "text-classification", "backend": "torch", "files": []})
    with pytest.raises(aikit.ModelLoadError, match="not a valid aikit manifest: files: "):
        aikit.Model.load(artifact)
    _write_manifest(artifact, {"format_version": 99, "task": "x", "backend": "torch", "files": {}})
    with pytest.raises(aikit.ModelLoadError, match="upgrade aikit"):
        aikit.Model.load(artifact)
