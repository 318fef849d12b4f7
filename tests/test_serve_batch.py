"""``aikit batch`` in-process: JSONL and Parquet in, results row for row out; settings checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aikit
from aikit.errors import ConfigError, InputError
from aikit.serve import ServeSettings, read_token
from aikit.serve.batch_job import BatchJob, run_local_batch

AIKIT = str(Path(sys.executable).parent / "aikit")
ROWS: list[Any] = ["good movie", {"input": "bad film", "id": "b"}, "hello world", {"input": "the cat", "id": 7}]


@pytest.fixture(scope="module")
def classifier_dir(tiny_model_dir: Any) -> Path:
    path: Path = tiny_model_dir("bert-sequence-classification")
    return path


def _texts() -> list[str]:
    return [r if isinstance(r, str) else r["input"] for r in ROWS]


def test_jsonl_in_jsonl_out_matches_predict(tmp_path: Path, classifier_dir: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n\n")
    out = tmp_path / "preds.jsonl"
    model = aikit.Model.load(classifier_dir)
    assert (
        run_local_batch(
            BatchJob(model=str(classifier_dir), input=src, output=out, batch_size=3), progress=False, model=model
        )
        == 4
    )
    records = [json.loads(line) for line in out.read_text().splitlines()]
    expected = model.predict(_texts())
    assert [r["index"] for r in records] == [0, 1, 2, 3]
    assert [r.get("id") for r in records] == [None, "b", None, 7]
    assert [r["label"] for r in records] == [e.label for e in expected]
    np.testing.assert_allclose([r["score"] for r in records], [e.score for e in expected], rtol=1e-5)
    assert not list(tmp_path.glob("*.partial"))


def test_parquet_in_parquet_out_through_the_cli(tmp_path: Path, classifier_dir: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3, 4], "text": _texts()}), src)
    out = tmp_path / "preds.parquet"
    run = subprocess.run(
        [AIKIT, "batch", str(classifier_dir), "--input", str(src), "--output", str(out), "--field", "text"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "wrote 4 results" in run.stderr
    table = pq.read_table(out).to_pylist()
    expected = aikit.Model.load(classifier_dir).predict(_texts())
    assert [row["id"] for row in table] == [1, 2, 3, 4]
    assert [json.loads(row["result"])["label"] for row in table] == [e.label for e in expected]


def test_bad_rows_and_files_name_what_is_wrong(tmp_path: Path, classifier_dir: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('"fine"\n{"text": "no input field"}\n')
    job = BatchJob(model=str(classifier_dir), input=src, output=tmp_path / "o.jsonl")
    with pytest.raises(InputError, match=r"input 1: row has no 'input' field"):
        run_local_batch(job, progress=False)
    assert not (tmp_path / "o.jsonl").exists() and not list(tmp_path.glob("*.partial"))
    src.write_text('"fine"\n{not json\n')
    with pytest.raises(InputError, match="line 2 is not valid JSON"):
        run_local_batch(job, progress=False)
    with pytest.raises(ConfigError, match="does not exist"):
        BatchJob(model="m", input=tmp_path / "missing.jsonl", output=tmp_path / "o.jsonl")
    with pytest.raises(ConfigError, match=r"\.jsonl or \.parquet"):
        BatchJob(model="m", input=src, output=tmp_path / "o.csv")
    with pytest.raises(ConfigError, match="overwrite"):
        BatchJob(model="m", input=src, output=src)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_queue": -1}, "max_queue"),
        ({"port": 70000}, "port"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"max_wait_ms": -1}, "max_wait_ms"),
        ({"token": "short"}, "at least 16"),
        ({"host": ""}, "host"),
    ],
)
def test_settings_are_validated(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServeSettings(**kwargs)


def test_defaults_bind_loopback_and_token_never_shows(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = ServeSettings(token="x" * 32)
    assert settings.host == "127.0.0.1" and settings.batching
    assert "x" * 32 not in repr(settings)
    monkeypatch.setenv("AIKIT_SERVE_TOKEN", "from-the-environment-123")
    assert read_token() == "from-the-environment-123"
    (tmp_path / "t").write_text("  from-a-file-0123456789  \n")
    assert read_token(tmp_path / "t") == "from-a-file-0123456789"  # a file wins over the environment
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        read_token(tmp_path / "empty")
    with pytest.raises(ConfigError, match="cannot read"):
        read_token(tmp_path / "missing")
    monkeypatch.delenv("AIKIT_SERVE_TOKEN")
    assert read_token() is None
