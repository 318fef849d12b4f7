"""Ray Serve and Ray Data on a real local Ray cluster (``ray.init(num_cpus=2)``).

Slow on a busy 2-core machine (every Ray worker imports torch), so one cluster serves the
whole module and each test uses a single model actor.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import aikit
from aikit.serve import ServeSettings
from aikit.serve.batch_job import BatchJob
from aikit.serve.local import free_port

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'aikit[ray]'")
pytestmark = [pytest.mark.ray, pytest.mark.slow]
TOKEN = "ray-serve-test-token-0123456789"


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        yield
    finally:
        ray.shutdown()


def test_ray_data_batch_job_matches_in_process_predict(cluster: None, tiny_model_dir: Any, tmp_path: Path) -> None:
    from aikit.serve.ray_batch import run_ray_batch

    model_dir = tiny_model_dir("bert-sequence-classification")
    texts = ["good movie", "bad film", "hello world", "the cat", "paris is a city", "red fish"] * 3
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps({"input": t, "id": i}) for i, t in enumerate(texts)) + "\n")
    out = tmp_path / "preds.jsonl"
    job = BatchJob(model=str(model_dir), input=src, output=out, batch_size=4)
    assert run_ray_batch(job, workers=1, cpus_per_worker=0.5) == len(texts)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    expected = aikit.Model.load(model_dir).predict(texts)
    assert [r["index"] for r in records] == list(range(len(texts)))
    assert [r["id"] for r in records] == list(range(len(texts)))
    assert [r["label"] for r in records] == [e.label for e in expected]
    np.testing.assert_allclose([r["score"] for r in records], [e.score for e in expected], rtol=1e-5)


def test_ray_serve_runs_the_same_app(cluster: None, tiny_model_dir: Any) -> None:
    from ray import serve

    from aikit.serve.ray_serve import RayServeOptions, start_ray_serve

    model_dir = tiny_model_dir("bert-embedding")
    port = free_port()
    settings = ServeSettings(port=port, token=TOKEN, max_batch_size=8, max_wait_ms=20, model_name="ray-embed")
    start_ray_serve(str(model_dir), settings, RayServeOptions(replicas=2, cpus_per_replica=0.5))
    try:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            deadline = time.monotonic() + 120
            while c.get("/ready", headers=auth).status_code != 200:  # warm-up inside the replica
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert c.get("/health").status_code == 200
            assert c.get("/info").status_code == 401
            texts = ["hello world", "the cat"]
            response = c.post("/v1/predict", json={"inputs": texts}, headers=auth)
            assert response.status_code == 200
            assert "x-queue-time-ms" in response.headers
            vectors = np.array([o["embedding"] for o in response.json()["outputs"]])
            np.testing.assert_allclose(vectors, aikit.Model.load(model_dir).embed(texts), rtol=1e-4, atol=1e-5)
            emb = c.post("/v1/embeddings", json={"input": "cat"}, headers=auth).json()
            assert emb["model"] == "ray-embed" and len(emb["data"]) == 1
            assert c.post("/v1/predict", json={"inputs": [1]}, headers=auth).status_code == 422
            assert "aikit_batch_size_count" in c.get("/metrics", headers=auth).text
            # Ray routes concurrent requests to both replicas; each answer names the one that gave it.
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                answers = list(
                    pool.map(lambda i: c.post("/v1/predict", json={"inputs": [f"cat {i}"]}, headers=auth), range(48))
                )
            assert all(a.status_code == 200 for a in answers)
            assert len({a.headers["x-aikit-replica"] for a in answers}) == 2
    finally:
        serve.shutdown()
