"""Hostile artifacts: manifests that try to run code, escape the folder, hang or crash the loader.

The attacker here can write the whole artifact folder, so every test that edits ``aikit.json``
rewrites ``aikit.json.sha256`` too (``_write_manifest``): the check under test must hold on its own.
Code-execution attempts use a real module in ``sys.modules`` (what the old ``module:attr``
resolution needed) whose function and class write a marker file; the marker must never appear.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import struct
import sys
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aikit
from aikit.model import artifact as artifact_module
from aikit.model.artifact import DIGEST_NAME, MANIFEST_NAME, hash_file, read_manifest, verify_files
from aikit.model.manifest import MAX_MANIFEST_BYTES, digest_line

TinyDir = Callable[[str], Path]
HOSTILE = settings(
    max_examples=25,
    derandomize=True,
    deadline=5000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# ------------------------------------------------------------------ helpers and fixtures


def _manifest(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((path / MANIFEST_NAME).read_text(encoding="utf-8"))
    return data


def _write_manifest(path: Path, manifest: Any) -> None:
    raw = json.dumps(manifest).encode()
    _write_raw_manifest(path, raw)


def _write_raw_manifest(path: Path, raw: bytes) -> None:
    (path / MANIFEST_NAME).write_bytes(raw)
    (path / DIGEST_NAME).write_text(digest_line(raw), encoding="utf-8")


def _rehash(path: Path, *names: str) -> None:
    """Record the current sha256 of ``names`` in the manifest (and re-sign it), as an attacker would."""
    manifest = _manifest(path)
    for name in names:
        manifest["files"][name] = hash_file(path / name)
    _write_manifest(path, manifest)


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    """A module already in ``sys.modules`` whose function and class leave a marker when used."""
    import torch

    path = tmp_path / "CODE_RAN"
    module = types.ModuleType("aikit_hostile_payload")

    def touch(*args: Any, **kwargs: Any) -> Any:
        path.write_text("ran", encoding="utf-8")
        return np.zeros((1, 8, 8), np.float32)

    class Evil(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            path.write_text("ran", encoding="utf-8")

    module.touch = touch  # type: ignore[attr-defined]
    module.Evil = Evil  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        yield path
    finally:
        del sys.modules[module.__name__]


@pytest.fixture(scope="module")
def saved_classifier(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: TinyDir) -> Path:
    return aikit.Model.load(tiny_model_dir("bert-sequence-classification")).save(
        tmp_path_factory.mktemp("clf") / "classifier"
    )


@pytest.fixture
def classifier(saved_classifier: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved_classifier, tmp_path / "classifier"))


@pytest.fixture(scope="module")
def saved_cnn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from aikit.testing.tiny import TinyCNN

    torch.manual_seed(0)
    model = aikit.Model.from_module(
        TinyCNN(), task="image-classification", preprocess=aikit.ImagePreprocess(size=(8, 8), grayscale=True)
    )
    return model.save(tmp_path_factory.mktemp("cnn") / "cnn")


@pytest.fixture
def cnn(saved_cnn: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved_cnn, tmp_path / "cnn"))


def _tiny_cnn() -> Any:
    from aikit.testing.tiny import TinyCNN

    return TinyCNN()


# ------------------------------------------------------------------ code named by a manifest never runs


def test_the_marker_payload_is_real(marker: Path) -> None:
    """Guard: the functions the manifests below name really do leave the marker when called."""
    sys.modules["aikit_hostile_payload"].touch()
    assert marker.exists()


@pytest.mark.parametrize("ref", ["aikit_hostile_payload:touch", "os:system", "shutil:rmtree", "builtins:eval"])
def test_a_preprocess_reference_is_never_resolved(cnn: Path, marker: Path, ref: str) -> None:
    manifest = _manifest(cnn)
    manifest["task_state"]["preprocess"] = ref
    _write_manifest(cnn, manifest)
    with pytest.raises(aikit.ModelLoadError, match=rf"preprocess function `{ref}`.*pass it again"):
        aikit.Model.load(cnn, module=_tiny_cnn())
    # the caller's function is used, and the recorded name stays a name
    model = aikit.Model.load(cnn, module=_tiny_cnn(), preprocess=lambda x: np.zeros((1, 8, 8), np.float32))
    model.predict(np.zeros((8, 8), np.uint8))
    assert not marker.exists()


@pytest.mark.parametrize("ref", ["aikit_hostile_payload:Evil", "subprocess:Popen", "torch.nn:Linear"])
def test_a_python_class_reference_is_never_instantiated(cnn: Path, marker: Path, ref: str) -> None:
    manifest = _manifest(cnn)
    manifest["backend_state"]["module"]["class"] = ref
    _write_manifest(cnn, manifest)
    with pytest.raises(aikit.ModelLoadError, match=rf"plain PyTorch class `{ref}`.*module=YourNet"):
        aikit.Model.load(cnn)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["Evil", "PreTrainedModel", "AutoModel", "pipeline", "os"])
def test_a_transformers_class_must_be_a_model_class_transformers_exports(classifier: Path, name: str) -> None:
    manifest = _manifest(classifier)
    manifest["backend_state"]["module"]["class"] = name
    _write_manifest(classifier, manifest)
    with pytest.raises(aikit.ModelLoadError):
        aikit.Model.load(classifier)


def test_an_image_preprocess_stays_data(cnn: Path, marker: Path) -> None:
    manifest = _manifest(cnn)
    manifest["task_state"]["preprocess"] = {"size": [8, 8], "grayscale": True, "__class__": "os:system"}
    _write_manifest(cnn, manifest)
    with pytest.raises(aikit.ModelLoadError, match="invalid ImagePreprocess"):
        aikit.Model.load(cnn, module=_tiny_cnn())
    assert not marker.exists()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_HOSTILE_VALUES = (
    _JSON
    | st.sampled_from(
        ["aikit_hostile_payload:touch", "aikit_hostile_payload:Evil", "os:system", "a\x00b", "../../etc/passwd"]
    )
    | st.integers(min_value=40, max_value=400).map(lambda n: json.loads("[" * n + "]" * n))
)
_FIELDS = [
    ("format_version",),
    ("task",),
    ("backend",),
    ("labels",),
    ("files",),
    ("source",),
    ("versions",),
    ("created",),
    ("transformations",),
    ("compression_report",),
    ("task_state",),
    ("task_state", "preprocess"),
    ("backend_state",),
    ("backend_state", "module"),
    ("backend_state", "module", "kind"),
    ("backend_state", "module", "class"),
    ("backend_state", "dtype"),
    ("files", "model.safetensors"),
]


@HOSTILE
@given(field=st.sampled_from(_FIELDS), value=_HOSTILE_VALUES)
def test_any_hostile_field_value_is_a_load_error_and_runs_nothing(
    cnn: Path, marker: Path, field: tuple[str, ...], value: Any
) -> None:
    original = (cnn / MANIFEST_NAME).read_bytes()
    try:
        manifest = _manifest(cnn)
        target = manifest
        for key in field[:-1]:
            target = target[key]
        target[field[-1]] = value
        _write_manifest(cnn, manifest)
        with contextlib.suppress(aikit.ModelLoadError):  # IntegrityError / UnsafeModelError are ones too
            aikit.Model.load(cnn, module=_tiny_cnn())
        assert not marker.exists()
    finally:
        _write_raw_manifest(cnn, original)


@HOSTILE
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_garbage_manifest_bytes_are_a_load_error(classifier: Path, data: bytes) -> None:
    _write_raw_manifest(classifier, data)
    with pytest.raises(aikit.ModelLoadError, match=MANIFEST_NAME.replace(".", r"\.")):
        aikit.Model.load(classifier)


def test_deep_nesting_is_refused_without_a_recursion_error(classifier: Path) -> None:
    manifest = _manifest(classifier)
    manifest["compression_report"] = "@"
    for depth in (40, 5_000, 200_000):
        raw = json.dumps(manifest).replace('"@"', "[" * depth + "]" * depth).encode()
        _write_raw_manifest(classifier, raw)
        with pytest.raises(aikit.ModelLoadError, match="nest"):
            aikit.Model.load(classifier)


def test_nul_characters_are_refused(classifier: Path) -> None:
    for where in ("key", "value", "file"):
        manifest = _manifest(classifier)
        if where == "key":
            manifest["task_state"]["po\x00ol"] = 1
        elif where == "value":
            manifest["created"] = "2024\x00"
        else:
            manifest["files"]["model\x00.safetensors"] = "0" * 64
        _write_manifest(classifier, manifest)
        with pytest.raises(aikit.ModelLoadError, match="NUL|malformed file name"):
            aikit.Model.load(classifier)


def test_a_huge_manifest_is_refused_before_parsing(classifier: Path) -> None:
    manifest = _manifest(classifier)
    manifest["created"] = "x" * MAX_MANIFEST_BYTES
    _write_manifest(classifier, manifest)
    with pytest.raises(aikit.ModelLoadError, match="refusing to read more than"):
        aikit.Model.load(classifier)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("format_version", "1"),
        ("format_version", True),
        ("task", 7),
        ("task", "no-such-task"),
        ("backend", "no-such-backend"),
        ("labels", "positive"),
        ("transformations", [{"bits": 8}]),
        ("transformations", [{"strategy": "no-such-strategy"}]),
        ("transformations", [{"strategy": "int8-dynamic", "bogus": 1}]),
        ("source", []),
        ("unknown_field", 1),
    ],
)
def test_wrong_types_are_load_errors_naming_the_manifest(classifier: Path, field: str, value: Any) -> None:
    manifest = _manifest(classifier)
    manifest[field] = value
    _write_manifest(classifier, manifest)
    with pytest.raises(aikit.ModelLoadError, match=r"aikit\.json|upgrade aikit"):
        aikit.Model.load(classifier)


# ------------------------------------------------------------------ the manifest's digest and the pin


def test_a_missing_or_malformed_digest_is_refused(classifier: Path) -> None:
    (classifier / DIGEST_NAME).write_text("not a digest\n", encoding="utf-8")
    with pytest.raises(aikit.IntegrityError, match="malformed"):
        aikit.Model.load(classifier)
    (classifier / DIGEST_NAME).unlink()
    with pytest.raises(aikit.IntegrityError, match=r"aikit\.json\.sha256.*is missing") as info:
        aikit.Model.load(classifier)
    assert info.value.file == DIGEST_NAME


def test_expected_sha256_pins_the_whole_artifact(classifier: Path) -> None:
    pin = hash_file(classifier / MANIFEST_NAME)
    assert aikit.Model.load(classifier, expected_sha256=pin).predict("good").label
    manifest = _manifest(classifier)
    manifest["labels"] = ["evil", "evil"]
    _write_manifest(classifier, manifest)  # consistent with its digest file, but not with the pin
    with pytest.raises(aikit.IntegrityError, match="not the pinned") as info:
        aikit.Model.load(classifier, expected_sha256=pin)
    assert info.value.file == MANIFEST_NAME


def test_expected_sha256_is_validated(classifier: Path, tiny_model_dir: TinyDir) -> None:
    pin = hash_file(classifier / MANIFEST_NAME)
    with pytest.raises(aikit.ConfigError, match="64 lowercase hex"):
        aikit.Model.load(classifier, expected_sha256=pin.upper())
    with pytest.raises(aikit.ConfigError, match="verify=False"):
        aikit.Model.load(classifier, expected_sha256=pin, verify=False)
    with pytest.raises(aikit.ConfigError, match="not an artifact"):
        aikit.Model.load(tiny_model_dir("bert-sequence-classification"), expected_sha256=pin)


def test_a_format_1_artifact_still_loads_with_a_warning(classifier: Path, caplog: pytest.LogCaptureFixture) -> None:
    manifest = _manifest(classifier)
    manifest["format_version"] = 1
    (classifier / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    (classifier / DIGEST_NAME).unlink()
    with caplog.at_level("WARNING", logger="aikit.artifact"):
        assert aikit.Model.load(classifier).predict("good").label
    assert any("older aikit (format 1)" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ the folder walk


def _outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir(exist_ok=True)
    (folder / "chat_template.jinja").write_text("{{ 'pwned' }}", encoding="utf-8")
    return folder


@pytest.mark.parametrize("verify", [True, False])
@pytest.mark.parametrize("kind", ["file-inside", "file-outside", "dir-inside", "dir-outside", "dangling"])
def test_a_symlink_anywhere_is_refused(classifier: Path, tmp_path: Path, verify: bool, kind: str) -> None:
    outside = _outside(tmp_path)
    (classifier / "sub").mkdir()
    link = classifier / "sub" / "link"
    target = {
        "file-inside": classifier / "config.json",
        "file-outside": outside / "chat_template.jinja",
        "dir-inside": classifier,
        "dir-outside": outside,
        "dangling": tmp_path / "missing",
    }[kind]
    link.symlink_to(target)
    with pytest.raises(aikit.IntegrityError, match="'sub/link' is a symbolic link") as info:
        aikit.Model.load(classifier, verify=verify)
    assert info.value.file == "sub/link"


def test_a_listed_file_replaced_by_a_symlink_is_refused_even_without_verify(classifier: Path, tmp_path: Path) -> None:
    """The reported attack: an outside chat template read by transformers through a linked path."""
    outside = _outside(tmp_path)
    (classifier / "tokenizer_config.json").rename(outside / "tokenizer_config.json")
    (classifier / "tokenizer_config.json").symlink_to(outside / "tokenizer_config.json")
    _rehash(classifier, "tokenizer_config.json")
    for verify in (True, False):
        with pytest.raises(aikit.IntegrityError, match="'tokenizer_config.json' is a symbolic link"):
            aikit.Model.load(classifier, verify=verify)


def test_a_linked_manifest_is_refused(classifier: Path, tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    (classifier / MANIFEST_NAME).rename(real)
    (classifier / MANIFEST_NAME).symlink_to(real)
    with pytest.raises(aikit.IntegrityError, match="aikit.json' is not a regular file"):
        aikit.Model.load(classifier)


def _special(path: Path, kind: str) -> socket.socket | None:
    if kind == "fifo":
        os.mkfifo(path)
        return None
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    return server


@pytest.mark.timeout(60)
@pytest.mark.parametrize("verify", [True, False])
@pytest.mark.parametrize(
    "name", ["pipe", "sub/pipe", "tokenizer.json", "model.safetensors", MANIFEST_NAME, DIGEST_NAME]
)
@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_special_files_are_refused_without_opening_them(classifier: Path, name: str, verify: bool, kind: str) -> None:
    path = classifier / name
    path.parent.mkdir(exist_ok=True)
    path.unlink(missing_ok=True)
    server = _special(path, kind)
    try:
        words = "FIFO|not a regular file" if kind == "fifo" else "socket|not a regular file"
        with pytest.raises(aikit.ModelLoadError, match=words):
            aikit.Model.load(classifier, verify=verify)
    finally:
        if server is not None:
            server.close()


@pytest.mark.parametrize("verify", [True, False])
def test_a_nested_manifest_is_refused(classifier: Path, verify: bool) -> None:
    (classifier / "inner").mkdir()
    shutil.copy(classifier / MANIFEST_NAME, classifier / "inner" / MANIFEST_NAME)
    with pytest.raises(aikit.IntegrityError, match="second manifest") as info:
        aikit.Model.load(classifier, verify=verify)
    assert info.value.file == f"inner/{MANIFEST_NAME}"


def test_a_listed_nested_manifest_is_refused(classifier: Path) -> None:
    (classifier / "inner").mkdir()
    shutil.copy(classifier / MANIFEST_NAME, classifier / "inner" / MANIFEST_NAME)
    _rehash(classifier, f"inner/{MANIFEST_NAME}")
    with pytest.raises(aikit.IntegrityError, match="one manifest, at its top level"):
        aikit.Model.load(classifier)


def test_unlisted_folders_are_refused(classifier: Path) -> None:
    (classifier / "empty").mkdir()
    with pytest.raises(aikit.IntegrityError, match="unexpected.*empty/") as info:
        aikit.Model.load(classifier)
    assert info.value.file == "empty/"


def test_verify_files_reads_an_intact_artifact(classifier: Path) -> None:
    verify_files(classifier, read_manifest(classifier))


# ------------------------------------------------------------------ corrupt weights with a consistent manifest


def _rewrite_header(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    change(header)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + length :])


def _first_tensor(header: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = next(v for k, v in header.items() if k != "__metadata__")
    return entry


_CORRUPTIONS: dict[str, Callable[[Path], object]] = {
    "header-length": lambda p: p.write_bytes(struct.pack("<Q", 1 << 60) + p.read_bytes()[8:]),
    "header-not-json": lambda p: p.write_bytes(struct.pack("<Q", 4) + b"{{{{" + p.read_bytes()[12:]),
    "offsets-past-end": lambda p: _rewrite_header(p, lambda h: _first_tensor(h).update(data_offsets=[0, 1 << 40])),
    "offsets-reversed": lambda p: _rewrite_header(p, lambda h: _first_tensor(h).update(data_offsets=[8, 0])),
    "shape-mismatch": lambda p: _rewrite_header(p, lambda h: _first_tensor(h).update(shape=[3, 3, 3, 3, 3])),
    "dtype-unknown": lambda p: _rewrite_header(p, lambda h: _first_tensor(h).update(dtype="Q99")),
    "empty": lambda p: p.write_bytes(b""),
}


@pytest.mark.parametrize("corruption", sorted(_CORRUPTIONS))
def test_corrupt_safetensors_are_load_errors_naming_the_file(cnn: Path, corruption: str) -> None:
    _CORRUPTIONS[corruption](cnn / "model.safetensors")
    _rehash(cnn, "model.safetensors")
    with pytest.raises(aikit.ModelLoadError, match=r"model\.safetensors"):
        aikit.Model.load(cnn, module=_tiny_cnn())


@HOSTILE
@given(cut=st.floats(min_value=0.0, max_value=0.999))
def test_truncated_safetensors_are_load_errors(cnn: Path, cut: float) -> None:
    weights = cnn / "model.safetensors"
    original = weights.read_bytes()
    original_manifest = (cnn / MANIFEST_NAME).read_bytes()
    try:
        weights.write_bytes(original[: int(len(original) * cut)])
        _rehash(cnn, "model.safetensors")
        with pytest.raises(aikit.ModelLoadError, match=r"model\.safetensors"):
            aikit.Model.load(cnn, module=_tiny_cnn())
    finally:
        weights.write_bytes(original)
        _write_raw_manifest(cnn, original_manifest)


# ------------------------------------------------------------------ ONNX Runtime artifacts


def _onnx_classifier(folder: Path) -> Path:
    """A small image classifier built with onnx.helper (no torch export involved)."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1, 64], np.int64), "shape")
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["pixel_values", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        initializer=[weight, shape],
    )
    path = folder / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


@pytest.fixture(scope="module")
def saved_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = _onnx_classifier(tmp_path_factory.mktemp("onnx-src"))
    pre = aikit.ImagePreprocess(size=(8, 8), grayscale=True)
    model = aikit.Model.load(source, task="image-classification", labels=["a", "b", "c"], preprocess=pre)
    return model.save(tmp_path_factory.mktemp("onnx") / "ort")


@pytest.fixture
def ort_artifact(saved_onnx: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved_onnx, tmp_path / "ort"))


def test_the_onnx_artifact_loads(ort_artifact: Path) -> None:
    model = aikit.Model.load(ort_artifact)
    assert model.backend_name == "onnxruntime" and model.predict(np.zeros((8, 8), np.uint8)).label in "abc"


def _graph_name(path: Path) -> str:
    name: str = _manifest(path)["backend_state"]["facts"]["graphs"]["model"]
    return name


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["parent", "absolute", "unlisted", "fifo-outside", "missing"])
def test_an_onnx_graph_named_outside_the_listed_files_never_runs(
    ort_artifact: Path, tmp_path: Path, where: str
) -> None:
    graph = _graph_name(ort_artifact)
    outside = tmp_path / "evil.onnx"
    shutil.copy(ort_artifact / graph, outside)
    if where == "fifo-outside":
        outside.unlink()
        os.mkfifo(outside)
    if where == "unlisted":
        shutil.copy(ort_artifact / graph, ort_artifact / "extra.onnx")
    name = {
        "parent": "../evil.onnx",
        "absolute": str(outside),
        "unlisted": "extra.onnx",
        "fifo-outside": "../evil.onnx",
        "missing": "nothing.onnx",
    }[where]
    manifest = _manifest(ort_artifact)
    manifest["backend_state"]["facts"]["graphs"]["model"] = name
    _write_manifest(ort_artifact, manifest)
    with pytest.raises(aikit.IntegrityError, match="not one of its listed") as info:
        aikit.Model.load(ort_artifact, verify=where != "unlisted")  # verify=False lets an unlisted file stay
    assert info.value.file == name


@pytest.mark.parametrize(
    "facts",
    [None, [], {"kind": "single"}, {"kind": "evil", "graphs": {}}, {"kind": "single", "graphs": {"model": 3}}],
)
def test_malformed_onnx_facts_are_load_errors(ort_artifact: Path, facts: Any) -> None:
    manifest = _manifest(ort_artifact)
    manifest["backend_state"]["facts"] = facts
    _write_manifest(ort_artifact, manifest)
    with pytest.raises(aikit.ModelLoadError, match="invalid ONNX graph facts"):
        aikit.Model.load(ort_artifact)


@HOSTILE
@given(cut=st.floats(min_value=0.0, max_value=0.99) | st.just(0.5))
def test_truncated_onnx_artifacts_are_load_errors_naming_the_graph(ort_artifact: Path, cut: float) -> None:
    graph = _graph_name(ort_artifact)
    original = (ort_artifact / graph).read_bytes()
    original_manifest = (ort_artifact / MANIFEST_NAME).read_bytes()
    try:
        (ort_artifact / graph).write_bytes(original[: int(len(original) * cut)])
        _rehash(ort_artifact, graph)
        with pytest.raises(aikit.ModelLoadError, match=graph.replace(".", r"\.")):
            aikit.Model.load(ort_artifact)
    finally:
        (ort_artifact / graph).write_bytes(original)
        _write_raw_manifest(ort_artifact, original_manifest)


# ------------------------------------------------------------------ code shipped with tokenizers and configs


def _code_module(folder: Path, ran: Path) -> None:
    (folder / "tok_custom.py").write_text(
        f"import pathlib\npathlib.Path({str(ran)!r}).write_text('ran')\n"
        "from transformers import BertTokenizerFast\n\n\nclass CustomTokenizer(BertTokenizerFast):\n    pass\n",
        encoding="utf-8",
    )


def _add_auto_map(folder: Path, file: str, auto_map: dict[str, Any]) -> None:
    path = folder / file
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data["auto_map"] = auto_map
    path.write_text(json.dumps(data), encoding="utf-8")


_TOKENIZER_MAP = {"AutoTokenizer": [None, "tok_custom.CustomTokenizer"]}


@pytest.fixture
def hf_folder(tiny_model_dir: TinyDir, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_model_dir("bert-sequence-classification"), tmp_path / "hf"))


@pytest.mark.timeout(120)
def test_a_tokenizer_auto_map_is_refused_and_never_prompts(
    hf_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = tmp_path / "TOKENIZER_CODE_RAN"
    _code_module(hf_folder, ran)
    _add_auto_map(hf_folder, "tokenizer_config.json", _TOKENIZER_MAP)

    def no_prompt(*args: Any) -> str:
        raise AssertionError("transformers asked on stdin whether to run shipped code")

    monkeypatch.setattr("builtins.input", no_prompt)
    with pytest.raises(aikit.UnsafeModelError, match=r"auto_map in tokenizer_config\.json.*tok_custom\.py"):
        aikit.Model.load(hf_folder)
    assert not ran.exists()


@pytest.mark.timeout(120)
def test_the_tokenizer_code_is_real(hf_folder: Path, tmp_path: Path) -> None:
    """Guard: with the opt-in, transformers does import the shipped tokenizer module."""
    ran = tmp_path / "TOKENIZER_CODE_RAN"
    _code_module(hf_folder, ran)
    _add_auto_map(hf_folder, "tokenizer_config.json", _TOKENIZER_MAP)
    try:
        with contextlib.suppress(aikit.ModelLoadError):  # what happens after the import does not matter
            aikit.Model.load(hf_folder, trust_remote_code=True)
        assert ran.exists()
    finally:
        for name in [m for m in sys.modules if "tok_custom" in m]:
            del sys.modules[name]


@pytest.mark.parametrize(
    "file", ["config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json"]
)
def test_an_auto_map_transformers_would_ignore_is_refused_too(hf_folder: Path, file: str) -> None:
    # bert is a model type transformers knows, so it would load its own classes and skip this map
    _add_auto_map(hf_folder, file, {"AutoModelForSequenceClassification": "missing.Model"})
    with pytest.raises(aikit.UnsafeModelError, match=rf"auto_map in {file.replace('.', '[.]')}"):
        aikit.Model.load(hf_folder)


def test_a_python_file_alone_is_refused(hf_folder: Path, tmp_path: Path) -> None:
    (hf_folder / "helper.py").write_text("raise SystemExit", encoding="utf-8")
    with pytest.raises(aikit.UnsafeModelError, match=r"helper\.py.*trust_remote_code=True"):
        aikit.Model.load(hf_folder)


def test_an_artifact_with_a_tokenizer_auto_map_is_refused(classifier: Path, tmp_path: Path) -> None:
    ran = tmp_path / "TOKENIZER_CODE_RAN"
    _code_module(classifier, ran)
    _add_auto_map(classifier, "tokenizer_config.json", _TOKENIZER_MAP)
    _rehash(classifier, "tok_custom.py", "tokenizer_config.json")
    with pytest.raises(aikit.UnsafeModelError, match="auto_map in tokenizer_config.json"):
        aikit.Model.load(classifier)
    assert not ran.exists()


def test_files_next_to_an_onnx_file_cannot_bring_code(tmp_path: Path) -> None:
    path = _onnx_classifier(tmp_path)
    ran = tmp_path / "TOKENIZER_CODE_RAN"
    _code_module(tmp_path, ran)
    _add_auto_map(tmp_path, "tokenizer_config.json", _TOKENIZER_MAP)
    with pytest.raises(aikit.UnsafeModelError, match="auto_map in tokenizer_config.json"):
        aikit.Model.load(path, task="image-classification", preprocess=aikit.ImagePreprocess(size=(8, 8)))
    assert not ran.exists()


# ------------------------------------------------------------------ temporary names of concurrent saves


@pytest.mark.parametrize(
    ("name", "owner"),
    [
        (".m.aikit-0123456789abcdef.tmp", ("m", "tmp")),
        (".m.int8.aikit-0123456789abcdef.tmp", ("m.int8", "tmp")),
        (".m.int8.aikit-0123456789abcdef.old", ("m.int8", "old")),
        (".m.aikit-x.aikit-0123456789abcdef.tmp", ("m.aikit-x", "tmp")),
        (".m.aikit-0123456789abcdeg.tmp", None),  # not hex
        (".m.aikit-0123456789abcdef0.tmp", None),  # wrong length
        (".m.0123456789abcdef.tmp", None),  # an older aikit's name, or someone else's
        ("m.aikit-0123456789abcdef.tmp", None),
        (".m.aikit-0123456789abcdef.bak", None),
    ],
)
def test_temporary_names_are_parsed_exactly(name: str, owner: tuple[str, str] | None) -> None:
    assert artifact_module._sibling_owner(name) == owner


def test_saving_m_leaves_the_temporaries_of_m_int8_alone(tmp_path: Path) -> None:
    dest = tmp_path / "m"
    theirs = [tmp_path / ".m.int8.aikit-0123456789abcdef.tmp", tmp_path / ".m.int8.aikit-fedcba9876543210.old"]
    mine = tmp_path / ".m.aikit-00000000000000aa.tmp"
    for folder in [*theirs, mine]:
        folder.mkdir()
        (folder / "payload").write_text("x", encoding="utf-8")
    artifact_module.write_artifact(dest, lambda tmp: {"task": "t", "backend": "b"})
    assert all((f / "payload").is_file() for f in theirs)
    assert not mine.exists()  # its own stale temporary is cleaned up
    assert not (dest / "payload").exists()  # and m.int8's parked backup was not moved into m


def test_a_parked_backup_of_m_is_restored_but_not_one_of_a_sibling(tmp_path: Path) -> None:
    parked = tmp_path / ".m.aikit-00000000000000bb.old"
    parked.mkdir()
    (parked / MANIFEST_NAME).write_text("{}", encoding="utf-8")
    sibling = tmp_path / ".m.int8.aikit-00000000000000cc.old"
    sibling.mkdir()
    artifact_module._remove_stale_temporaries(tmp_path / "m")
    assert (tmp_path / "m" / MANIFEST_NAME).is_file() and sibling.is_dir()


@pytest.mark.timeout(120)
def test_a_save_to_m_does_not_break_a_running_save_to_m_int8(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow_fill(tmp: Path) -> dict[str, Any]:
        (tmp / "weights").write_text("int8", encoding="utf-8")
        started.set()
        assert release.wait(60)
        return {"task": "t", "backend": "b"}

    def save_sibling() -> None:
        try:
            artifact_module.write_artifact(tmp_path / "m.int8", slow_fill)
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)

    worker = threading.Thread(target=save_sibling)
    worker.start()
    assert started.wait(60)
    artifact_module.write_artifact(tmp_path / "m", lambda tmp: {"task": "t", "backend": "b"})  # while m.int8 runs
    release.set()
    worker.join(60)
    assert not errors, errors
    assert (tmp_path / "m.int8" / "weights").read_text(encoding="utf-8") == "int8"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "m.int8"]


@pytest.mark.timeout(300)
def test_concurrent_model_saves_to_sibling_folders_are_independent(tiny_model_dir: TinyDir, tmp_path: Path) -> None:
    model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"), threads=1)
    names = ["m", "m.int8", "m.int8.aikit-x", "m.fp16"]
    barrier = threading.Barrier(len(names))
    errors: list[BaseException] = []

    def save(name: str) -> None:
        try:
            for _ in range(3):
                barrier.wait(60)
                model.save(tmp_path / name)
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    assert not errors, errors
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    for name in names:
        verify_files(tmp_path / name, read_manifest(tmp_path / name))


@pytest.mark.parametrize("pooling", ["evil", 3, None, ["mean"]])
def test_task_settings_a_task_rejects_are_load_errors(tiny_model_dir: TinyDir, tmp_path: Path, pooling: Any) -> None:
    path = aikit.Model.load(tiny_model_dir("bert-embedding"), task="feature-extraction").save(tmp_path / "emb")
    manifest = _manifest(path)
    manifest["task_state"]["pooling"] = pooling
    _write_manifest(path, manifest)
    with pytest.raises(aikit.ModelLoadError, match="task_state in its manifest is invalid.*pooling"):
        aikit.Model.load(path)
