"""aikit's cache stays under its size bound: least recently used entries go first, never the one just
written; a bad bound is refused before a build; ``aikit cache`` reports and clears."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aikit import cache
from aikit.cli import app
from aikit.errors import ConfigError


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("AIKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("AIKIT_CACHE_MAX_GB", raising=False)
    yield tmp_path


def entry(root: Path, kind: str, name: str, size: int, age_s: float) -> Path:
    folder = root / kind / name
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\0" * size)
    stamp = time.time() - age_s
    os.utime(folder, (stamp, stamp))
    return folder


def test_prune_removes_least_recently_used_first_across_kinds(root: Path) -> None:
    old = entry(root, "onnx", "old", 4000, 300)
    conversion = entry(root, "gguf", "conversion", 4000, 200)
    recent = entry(root, "onnx", "recent", 4000, 100)
    new = entry(root, "onnx", "new", 4000, 0)
    cache.mark_used(old)  # reused just now: no longer the least recently used

    removed = cache.prune(keep=new, limit=9000)

    assert [e.path for e in removed] == [conversion, recent]
    assert old.is_dir() and new.is_dir() and not conversion.exists() and not recent.exists()
    assert not any(p.name.startswith(".") for kind in ("onnx", "gguf") for p in (root / kind).iterdir())


def test_the_entry_just_written_stays_even_when_larger_than_the_bound(root: Path) -> None:
    other = entry(root, "onnx", "other", 10, 50)
    big = entry(root, "onnx", "big", 5000, 0)
    assert [e.path for e in cache.prune(keep=big, limit=1000)] == [other]
    assert big.is_dir()


def test_bound_from_environment(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache.cache_limit() == cache.DEFAULT_LIMIT_GB * 1e9
    monkeypatch.setenv("AIKIT_CACHE_MAX_GB", "2.5")
    assert cache.cache_limit() == 2.5e9
    monkeypatch.setenv("AIKIT_CACHE_MAX_GB", "unlimited")
    assert cache.cache_limit() == float("inf")
    entry(root, "onnx", "a", 4000, 10)
    assert cache.prune() == []
    for bad in ("lots", "-1", "nan", "inf GB"):
        monkeypatch.setenv("AIKIT_CACHE_MAX_GB", bad)
        with pytest.raises(ConfigError, match="AIKIT_CACHE_MAX_GB"):
            cache.cache_limit()


def test_dead_builds_go_and_live_ones_stay(root: Path) -> None:
    dead = entry(root, "onnx", ".abc.x1.tmp", 100, cache.STALE_TMP_SECONDS + 60)
    live = entry(root, "onnx", ".def.x2.tmp", 100, 5)
    cache.prune(limit=float("inf"))
    assert not dead.exists() and live.is_dir()


def test_onnx_cache_evicts_on_write_and_rebuilds_what_it_evicted(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aikit_onnxruntime.export.cache import cached_entry

    builds: list[str] = []

    def builder(name: str) -> Callable[[Path], dict[str, str]]:
        def build(tmp: Path) -> dict[str, str]:
            builds.append(name)
            (tmp / "model.onnx").write_bytes(b"\1" * 3000)
            return {"name": name}

        return build

    monkeypatch.setenv("AIKIT_CACHE_MAX_GB", str(4000 / 1e9))  # room for one entry
    first, _ = cached_entry("a" * 64, builder("a"))
    assert cached_entry("a" * 64, builder("a"))[1] == {"name": "a"} and builds == ["a"]  # a hit
    second, _ = cached_entry("b" * 64, builder("b"))
    assert second.is_dir() and not first.exists()
    cached_entry("a" * 64, builder("a"))  # evicted: built again
    assert builds == ["a", "b", "a"] and not second.exists()

    monkeypatch.setenv("AIKIT_CACHE_MAX_GB", "a lot")
    with pytest.raises(ConfigError, match="AIKIT_CACHE_MAX_GB"):
        cached_entry("c" * 64, builder("c"))
    assert builds == ["a", "b", "a"]  # refused before building


def test_cli_reports_prunes_and_clears(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    entry(root, "onnx", "one", 3000, 100)
    entry(root, "gguf", "two", 2000, 0)

    shown = json.loads(runner.invoke(app, ["cache", "--json"]).output)
    assert shown["folder"] == str(root) and shown["limit_gb"] == cache.DEFAULT_LIMIT_GB
    assert [(Path(e["path"]).name, e["kind"]) for e in shown["entries"]] == [("two", "gguf"), ("one", "onnx")]
    assert shown["total_gb"] == pytest.approx(5000 / 1e9)

    monkeypatch.setenv("AIKIT_CACHE_MAX_GB", str(2500 / 1e9))
    pruned = runner.invoke(app, ["cache", "--prune"])
    assert pruned.exit_code == 0 and "removed 1 entries" in pruned.output and (root / "gguf" / "two").is_dir()

    cleared = runner.invoke(app, ["cache", "--clear", "--json"])
    assert [Path(e["path"]).name for e in json.loads(cleared.output)["removed"]] == ["two"]
    assert cache.cache_entries() == []


def test_a_model_whose_entry_was_removed_still_predicts_and_says_why_it_cannot_save(
    root: Path, tiny_model_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    import aikit
    from aikit.errors import ArtifactError

    model = aikit.Model.load(tiny_model_dir("bert-embedding"), backend="onnxruntime")
    before = model.predict(["a few words"])
    assert [e.kind for e in cache.clear()] == ["onnx"]
    # The session holds its files open (POSIX): the model keeps working.
    assert before[0].vector.tolist() == pytest.approx(model.predict(["a few words"])[0].vector.tolist())
    with pytest.raises(ArtifactError, match="AIKIT_CACHE_MAX_GB"):
        model.save(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _resident_fraction(path: Path) -> float:
    """Share of ``path``'s pages in the page cache (``mincore`` over a private mapping of the file)."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    size = path.stat().st_size
    with path.open("rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as mapped:
        view = (ctypes.c_char * size).from_buffer(mapped)
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = (ctypes.c_ubyte * pages)()
        rc = libc.mincore(ctypes.c_void_p(ctypes.addressof(view)), ctypes.c_size_t(size), vec)
        del view
    assert rc == 0, ctypes.get_errno()
    return sum(v & 1 for v in vec) / pages


def _filesystem(path: Path) -> str:
    mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    best = max((m for m in mounts if str(path).startswith(m[1])), key=lambda m: len(m[1]))
    return best[2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page-cache residency via mincore (Linux)")
def test_a_new_entry_is_written_to_disk_and_dropped_from_the_page_cache(root: Path) -> None:
    """So that a later process mapping its weights maps only the pages it touches (see ``cache.settle``)."""
    from aikit_onnxruntime.export.cache import cached_entry

    if _filesystem(root) in ("tmpfs", "ramfs"):
        pytest.skip(f"{root} is in memory: its pages cannot leave the page cache")

    def build(tmp: Path) -> dict[str, str]:
        (tmp / "model.onnx.data").write_bytes(os.urandom(4 << 20))
        return {}

    folder, _ = cached_entry("e" * 64, build)
    assert _resident_fraction(folder / "model.onnx.data") < 0.1
