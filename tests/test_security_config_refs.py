"""File names and classes inside a model's config files cannot reach outside the folder.

Found by a hostile review: transformers joins ``fast_tokenizer_files`` (and other ``*_file`` names)
onto the folder, so ``/abs`` or ``../`` names made an artifact load its tokenizer from a file outside
it (and outside its hashes); ``tokenizer_class: "AutoModel"`` made transformers load model weights,
pickles included, while reading the tokenizer.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import aikit


def _folder(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir("bert-embedding"), folder)
    return folder


def _edit(folder: Path, **fields: object) -> None:
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(fields)
    path.write_text(json.dumps(config), encoding="utf-8")


@pytest.mark.parametrize("where", ["absolute", "parent"])
def test_a_tokenizer_file_outside_the_folder_is_refused(
    tiny_model_dir: Callable[[str], Path], tmp_path: Path, where: str
) -> None:
    folder = _folder(tiny_model_dir, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(folder / "tokenizer.json", outside / "tokenizer.1.0.json")
    name = str(outside / "tokenizer.1.0.json") if where == "absolute" else "../outside/tokenizer.1.0.json"
    _edit(folder, fast_tokenizer_files=[name])
    for trust in (False, True):  # data, not code: no opt-in lets a file name leave the folder
        with pytest.raises(aikit.UnsafeModelError, match="outside the model folder"):
            aikit.Model.load(folder, task="feature-extraction", trust_remote_code=trust)


def test_an_artifact_whose_tokenizer_file_points_outside_is_refused(
    tiny_model_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    saved = tmp_path / "art"
    aikit.Model.load(tiny_model_dir("bert-embedding"), task="feature-extraction").save(saved)
    _edit(saved, tokenizer_file="/etc/hostname")
    with pytest.raises(aikit.UnsafeModelError, match="outside the model folder"):
        aikit.Model.load(saved, verify=False)


@pytest.mark.parametrize("cls", ["AutoModel", "BertModel", 5])
def test_tokenizer_class_must_be_a_tokenizer(
    tiny_model_dir: Callable[[str], Path], tmp_path: Path, cls: object
) -> None:
    folder = _folder(tiny_model_dir, tmp_path)
    _edit(folder, tokenizer_class=cls)
    with pytest.raises(aikit.UnsafeModelError, match="not a tokenizer class"):
        aikit.Model.load(folder, task="feature-extraction")


def test_ordinary_tokenizer_configs_still_load(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    folder = _folder(tiny_model_dir, tmp_path)
    _edit(folder, tokenizer_class="BertTokenizerFast", tokenizer_file="tokenizer.json")
    assert aikit.Model.load(folder, task="feature-extraction").embed(["a cat"]).shape[0] == 1
