"""Load test: the packaged MiniLM served by aikit (batching on / off) and by LitServe (batching).

Everything runs on loopback, bounded in requests and time. Each server is its own process
(started here, one at a time, same torch thread count); one asyncio client process drives
1, 8, 32 and 128 concurrent clients (closed loop: each client sends its next request when the
last one is answered) and checks every response against in-process ``predict``. Then an
overload phase fires an open-loop stream at 4x the measured sustainable rate at aikit (batching)
and checks that excess requests get fast 503s, not timeouts, and that the server recovers.

    python benchmarks/load_test.py                 # full run (~10 minutes on 2 busy cores)
    python benchmarks/load_test.py --quick         # smaller bounds, for a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from benchmarks.common import measured_line
from benchmarks.corpus import load_sentences

LEVELS = (1, 8, 32, 128)
TOL = 1e-4  # max abs difference per vector component vs in-process predict


# ---------------------------------------------------------------------- servers
try:  # LitServe is the reference; its API class must be importable for LitServe's worker processes.
    import litserve as ls

    class MiniLMAPI(ls.LitAPI):  # type: ignore[misc]
        """MiniLM for LitServe: the same aikit model, so only the serving stacks differ."""

        def setup(self, device: str) -> None:
            import aikit
            from aikit.defaults import default_model_path

            self.model = aikit.Model.load(default_model_path("minilm"), task="feature-extraction")

        def decode_request(self, request):  # type: ignore[no-untyped-def]  # LitServe reads the annotation
            return str(request["input"])

        def predict(self, texts: list[str]) -> list[list[float]]:
            return [v.tolist() for v in self.model.embed(list(texts))]

        def encode_response(self, vector: list[float]) -> dict[str, Any]:
            return {"embedding": vector}

except ImportError:  # pragma: no cover - the reference is skipped without litserve
    ls = None


def litserve_main(port: int, max_batch_size: int) -> None:
    """Run LitServe with MiniLM on ``port`` (batching up to ``max_batch_size``, 5 ms timeout)."""
    if ls is None:
        raise SystemExit("litserve is not installed: pip install --no-deps litserve && pip install pyzmq")
    api = MiniLMAPI(max_batch_size=max_batch_size, batch_timeout=0.005)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=60)
    server.run(host="127.0.0.1", port=port, log_level="warning", generate_client_file=False, num_api_servers=1)


@dataclass
class Server:
    name: str
    path: str  # request path
    proc: subprocess.Popen[bytes]
    url: str

    def body(self, text: str) -> dict[str, Any]:
        return {"inputs": [text]} if self.path == "/v1/predict" else {"input": text}

    @staticmethod
    def vector(payload: dict[str, Any]) -> list[float]:
        if "outputs" in payload:
            return list(payload["outputs"][0]["embedding"])
        return list(payload["embedding"])

    def stop(self) -> None:
        """Stop the server and every process it started (LitServe forks workers that a plain
        ``terminate`` of the parent left running, reparented to init): the server runs in its own
        session, so the whole process group is signalled."""
        stop_group(self.proc)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return  # the whole group is gone
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader exited; workers of the group may still be shutting down.
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def start_server(kind: str, port: int, *, max_queue: int = 1024, timeout_s: float = 60.0) -> Server:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("AIKIT_SERVE_TOKEN", None)
    from aikit.defaults import default_model_path

    minilm = str(default_model_path("minilm"))
    aikit_bin = str(Path(sys.executable).parent / "aikit")
    common = [
        "--port",
        str(port),
        "--task",
        "feature-extraction",
        "--log-level",
        "warning",
        "--timeout",
        f"{timeout_s:g}",
    ]
    if kind == "aikit-batching":
        cmd = [
            aikit_bin,
            "serve",
            minilm,
            *common,
            "--max-batch-size",
            "32",
            "--max-wait-ms",
            "5",
            "--max-queue",
            str(max_queue),
        ]
        path, ready = "/v1/predict", "/ready"
    elif kind.startswith("ray-"):  # ray-N: aikit serve --engine ray with N replicas of 1 CPU each
        replicas = kind.split("-", 1)[1]
        cmd = [aikit_bin, "serve", minilm, *common, "--engine", "ray", "--replicas", replicas, "--max-batch-size", "32",
               "--max-wait-ms", "5", "--max-queue", str(max_queue)]  # fmt: skip
        path, ready = "/v1/predict", "/ready"
    elif kind == "aikit-no-batching":
        cmd = [aikit_bin, "serve", minilm, *common, "--max-batch-size", "1", "--max-queue", str(max_queue)]
        path, ready = "/v1/predict", "/ready"
    else:
        cmd = [sys.executable, __file__, "--litserve-server", str(port)]
        path, ready = "/predict", "/health"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    server = Server(kind, path, proc, f"http://127.0.0.1:{port}")
    _wait_ready(server, ready)
    return server


def _wait_ready(server: Server, ready: str) -> None:
    """Poll ``ready`` until 200; stop the server's process group if it dies or takes over 300 s."""
    import httpx

    deadline = time.monotonic() + 300
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode} before it was ready")
        if time.monotonic() > deadline:
            stop_group(server.proc)
            raise RuntimeError(f"{server.name} was not ready within 300 s")
        try:
            if httpx.get(server.url + ready, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)


# ---------------------------------------------------------------------- closed-loop load
@dataclass
class LevelResult:
    server: str
    clients: int
    sent: int = 0
    ok: int = 0
    wrong: int = 0
    failed: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    replicas: dict[str, int] = field(default_factory=dict)  # answers per X-Aikit-Replica (Ray only)

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000.0) if self.latencies else float("nan")


async def run_level(
    server: Server, clients: int, texts: list[str], expected: np.ndarray, *, max_requests: int, max_seconds: float
) -> LevelResult:
    import aiohttp

    result = LevelResult(server.name, clients)
    counter = iter(range(max_requests))
    url = server.url + server.path
    start = time.perf_counter()
    stop_at = start + max_seconds

    async def client(http: aiohttp.ClientSession) -> None:
        for i in counter:
            if time.perf_counter() > stop_at:
                return
            k = i % len(texts)
            t0 = time.perf_counter()
            result.sent += 1
            try:
                async with http.post(url, json=server.body(texts[k])) as r:
                    status, payload = r.status, await r.read()
                    replica = r.headers.get("x-aikit-replica")
                    if replica is not None:
                        result.replicas[replica] = result.replicas.get(replica, 0) + 1
            except (aiohttp.ClientError, TimeoutError):
                result.failed += 1
                continue
            result.latencies.append(time.perf_counter() - t0)
            if status != 200:
                result.failed += 1
                continue
            got = np.asarray(server.vector(json.loads(payload)), dtype=np.float32)
            if got.shape == expected[k].shape and float(np.abs(got - expected[k]).max()) <= TOL:
                result.ok += 1
            else:
                result.wrong += 1

    async with _session(clients, 120) as http:
        async with http.post(url, json=server.body(texts[0])) as r:  # connection + first-call warm-up
            await r.read()
        start = time.perf_counter()
        stop_at = start + max_seconds
        await asyncio.gather(*(client(http) for _ in range(clients)))
    result.seconds = time.perf_counter() - start
    return result


def _session(connections: int, timeout_s: float) -> Any:
    """The load client: aiohttp, whose connection pool costs O(1) per request.

    httpx was used before and measured its own pool, not the server: with hundreds of requests in
    flight its pool bookkeeping grows with the number of waiting requests, and the 503s of the
    overload phase took 14-31 s to arrive at the client while the server's own ``X-Total-Time-Ms``
    said 21 ms (2026-12-01, same server, same rate: aiohttp saw 2 ms).
    """
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections), timeout=aiohttp.ClientTimeout(total=timeout_s)
    )


# ---------------------------------------------------------------------- overload
async def overload(
    server: Server, rate: float, seconds: float, texts: list[str], expected: np.ndarray, *, timeout_s: float
) -> dict[str, Any]:
    """Open loop at ``rate`` req/s for ``seconds``; then 20 sequential requests to check recovery.

    ``timeout_s`` is the server's deadline: an accepted request must be answered within it."""
    import aiohttp

    statuses: dict[str, int] = {}
    refused_latency: list[float] = []
    ok_latency: list[float] = []
    wrong = 0

    url = server.url + server.path
    server_503_ms: list[float] = []

    async def one(http: aiohttp.ClientSession, k: int) -> None:
        nonlocal wrong
        t0 = time.perf_counter()
        payload = b""
        try:
            async with http.post(url, json=server.body(texts[k])) as r:
                key, payload = str(r.status), await r.read()
                total_ms = r.headers.get("x-total-time-ms")
        except TimeoutError:
            key = "client-timeout"
        except aiohttp.ClientError as exc:
            key = type(exc).__name__
        elapsed = time.perf_counter() - t0
        statuses[key] = statuses.get(key, 0) + 1
        if key == "503":
            refused_latency.append(elapsed)
            if total_ms is not None:
                server_503_ms.append(float(total_ms))
        elif key == "200":
            ok_latency.append(elapsed)
            got = np.asarray(server.vector(json.loads(payload)), dtype=np.float32)
            if float(np.abs(got - expected[k]).max()) > TOL:
                wrong += 1

    # 0: no connection limit (open loop); the client waits longer than the server's deadline, so a
    # request the server fails to answer in time shows up as a late answer, not a client timeout.
    async with _session(0, 3 * timeout_s + 10) as http:
        tasks = []
        start = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(http, i % len(texts))))
        await asyncio.gather(*tasks)
        await asyncio.sleep(1.0)
        recovered = 0
        for k in range(20):
            async with http.post(url, json=server.body(texts[k])) as r:
                recovered += r.status == 200

    def pct(xs: list[float], q: float) -> float | None:
        return round(float(np.percentile(xs, q) * 1000.0), 1) if xs else None

    return {
        "rate_per_s": round(rate, 1),
        "sent": n,
        "statuses": statuses,
        "wrong": wrong,
        "p50_503_ms": pct(refused_latency, 50),
        "p95_503_ms": pct(refused_latency, 95),
        "max_503_ms": round(max(refused_latency) * 1000.0, 1) if refused_latency else None,
        "p95_200_ms": pct(ok_latency, 95),
        "p99_200_ms": pct(ok_latency, 99),
        "max_200_ms": round(max(ok_latency) * 1000.0, 1) if ok_latency else None,
        "server_p95_503_ms": pct([x / 1000.0 for x in server_503_ms], 95),
        "deadline_ms": timeout_s * 1000.0,
        "recovered_of_20": recovered,
    }


# ---------------------------------------------------------------------- chat (SmolLM2, streamed)
CHAT_LEVELS = (1, 4, 16)
CHAT_PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain in two sentences why the sky is blue.",
    "List three uses of a paperclip.",
    "Summarise this: The Python standard library offers modules for files, networking and data formats.",
    "Give me a short tip for writing clear emails.",
    "What does a compiler do?",
    "Name three planets and one fact about each.",
]


def start_chat_server(port: int, *, continuous: bool, max_streams: int) -> Server:
    """The packaged SmolLM2 GGUF under ``aikit serve`` (its default backend), streams bounded by ``max_streams``."""
    from aikit.defaults import default_model_path

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("AIKIT_SERVE_TOKEN", None)
    aikit_bin = str(Path(sys.executable).parent / "aikit")
    cmd = [
        aikit_bin, "serve", str(default_model_path("smollm2")), "--port", str(port), "--log-level", "warning",
        "--timeout", "600", "--max-batch-size", str(max_streams), "--max-queue", "256", "--name", "smollm2",
        "--continuous-batching" if continuous else "--no-continuous-batching",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    server = Server("aikit-continuous" if continuous else "aikit-one-at-a-time", "/v1/chat/completions", proc,
                    f"http://127.0.0.1:{port}")  # fmt: skip
    _wait_ready(server, "/ready")
    return server


@dataclass
class ChatResult:
    server: str
    streams: int
    requests: int = 0
    wrong: int = 0
    failed: int = 0
    tokens: int = 0
    seconds: float = 0.0
    ttft: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def pct(self, xs: list[float], q: float) -> float:
        return float(np.percentile(xs, q) * 1000.0) if xs else float("nan")


async def chat_level(
    server: Server, streams: int, expected: dict[str, str], *, max_tokens: int, max_requests: int, max_seconds: float
) -> ChatResult:
    """``streams`` closed-loop clients sending streamed chats; text checked against in-process greedy output."""
    import aiohttp

    result = ChatResult(server.name, streams)
    counter = iter(range(max_requests))
    url = server.url + server.path
    prompts = list(expected)

    async def client(http: aiohttp.ClientSession) -> None:
        for i in counter:
            if time.perf_counter() > stop_at:
                return
            prompt = prompts[i % len(prompts)]
            body = {
                "model": "smollm2",
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": max_tokens,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            t0 = time.perf_counter()
            first: float | None = None
            text, tokens = "", 0
            result.requests += 1
            try:
                async with http.post(url, json=body) as r:
                    if r.status != 200:
                        result.failed += 1
                        continue
                    async for raw in r.content:
                        line = raw.decode().strip()
                        if not line.startswith("data: {"):
                            continue
                        chunk = json.loads(line[6:])
                        for choice in chunk["choices"]:
                            piece = choice["delta"].get("content") or ""
                            if piece and first is None:
                                first = time.perf_counter() - t0
                            text += piece
                        if chunk.get("usage"):
                            tokens = int(chunk["usage"]["completion_tokens"])
            except (aiohttp.ClientError, TimeoutError):
                result.failed += 1
                continue
            result.latencies.append(time.perf_counter() - t0)
            if first is not None:
                result.ttft.append(first)
            result.tokens += tokens
            result.wrong += text != expected[prompt]

    async with _session(streams, 600) as http:
        start = time.perf_counter()
        stop_at = start + max_seconds
        await asyncio.gather(*(client(http) for _ in range(streams)))
    result.seconds = time.perf_counter() - start
    return result


def chat_expected(max_tokens: int) -> dict[str, str]:
    """Each prompt's greedy answer from the same model in this process (what every response must equal)."""
    import aikit
    from aikit.defaults import default_model_path

    model = aikit.Model.load(default_model_path("smollm2"))
    return {p: model.predict([{"role": "user", "content": p}], max_new_tokens=max_tokens).text for p in CHAT_PROMPTS}


# ---------------------------------------------------------------------- main
def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("aikit", "torch", "transformers", "fastapi", "uvicorn", "litserve", "aiohttp"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--litserve-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="small bounds (smoke run)")
    parser.add_argument(
        "--phases", default="embed,overload,chat,ray", help="which phases to run (embed,overload,chat,ray)"
    )
    parser.add_argument("--servers", default="aikit-batching,aikit-no-batching,litserve-batching")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--chat-levels", default=",".join(map(str, CHAT_LEVELS)))
    parser.add_argument("--max-seconds", type=float, default=20.0, help="time bound per embeddings level")
    parser.add_argument("--chat-seconds", type=float, default=30.0, help="time bound per chat level")
    parser.add_argument("--chat-tokens", type=int, default=64, help="max_tokens of every chat request")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--render", type=Path, help="print the docs tables of a JSON written by --json, and exit")
    parser.add_argument(
        "--deadline", type=float, default=2.0, help="the server's per-request deadline in the overload phase (s)"
    )
    args = parser.parse_args()
    if args.render:
        print(render(json.loads(args.render.read_text(encoding="utf-8"))))
        return
    if args.litserve_server:
        litserve_main(args.litserve_server, max_batch_size=32)
        return
    # SIGTERM (a CI timeout, kill) must also run the finally blocks that stop the servers.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    import aikit
    from aikit.defaults import default_model_path
    from aikit.serve.local import free_port
    from aikit.sysinfo import machine_info

    phases = set(args.phases.split(","))
    max_seconds = 6.0 if args.quick else args.max_seconds
    levels = [int(x) for x in args.levels.split(",")]
    load_before = os.getloadavg()[0]
    payload: dict[str, Any] = {
        "measured": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": {**machine_info(), "load_average_before": round(load_before, 2)},
        "versions": versions(),
    }
    print(f"machine: {json.dumps(payload['machine'])}")
    print("versions:", json.dumps(payload["versions"]), flush=True)

    results: list[LevelResult] = []
    if phases & {"embed", "overload", "ray"}:
        texts = load_sentences(256)
        reference = aikit.Model.load(default_model_path("minilm"), task="feature-extraction")
        expected = reference.embed(texts)
        del reference
    if "embed" in phases:
        for name in args.servers.split(","):
            server = start_server(name, free_port())
            try:
                for clients in levels:
                    max_requests = max(8 * clients, 64) if args.quick else max(24 * clients, 256)
                    res = asyncio.run(
                        run_level(server, clients, texts, expected, max_requests=max_requests, max_seconds=max_seconds)
                    )
                    results.append(res)
                    print(
                        f"{name:18s} clients={clients:4d} ok={res.ok:5d} wrong={res.wrong} failed={res.failed} "
                        f"thr={res.throughput:7.1f}/s p50={res.pct(50):7.1f} p95={res.pct(95):7.1f} "
                        f"p99={res.pct(99):7.1f} ms",
                        flush=True,
                    )
            finally:
                server.stop()
        payload["levels"] = [
            {
                **{k: v for k, v in r.__dict__.items() if k != "latencies"},
                "throughput": r.throughput,
                "p50_ms": r.pct(50),
                "p95_ms": r.pct(95),
                "p99_ms": r.pct(99),
            }
            for r in results
        ]

    if "overload" in phases:
        batching = [r for r in results if r.server == "aikit-batching"]
        # 4x what the batching server sustained (or a fixed 400/s when the embed phase did not run).
        sustainable = max(r.throughput for r in batching) if batching else 100.0
        # A queue of about one second of work: at 4x the sustainable rate it fills within a second or two.
        server = start_server(
            "aikit-batching", free_port(), max_queue=max(8, round(sustainable)), timeout_s=args.deadline
        )
        try:
            payload["overload"] = asyncio.run(
                overload(server, 4 * sustainable, 4.0 if args.quick else 8.0, texts, expected, timeout_s=args.deadline)
            )
        finally:
            server.stop()
        print("overload:", json.dumps(payload["overload"]), flush=True)

    if "ray" in phases:
        ray_rows: list[dict[str, Any]] = []
        for replicas in (1, 2):
            server = start_server(f"ray-{replicas}", free_port())
            try:
                ray_got = asyncio.run(
                    run_level(server, 32, texts, expected, max_requests=100_000, max_seconds=max_seconds)
                )
            finally:
                server.stop()
            ray_row: dict[str, Any] = {
                "replicas": replicas,
                "clients": 32,
                "ok": ray_got.ok,
                "wrong": ray_got.wrong,
                "failed": ray_got.failed,
                "throughput": ray_got.throughput,
                "p99_ms": ray_got.pct(99),
                "answers_per_replica": sorted(ray_got.replicas.values(), reverse=True),
            }
            ray_rows.append(ray_row)
            print(json.dumps(ray_row), flush=True)
        payload["ray"] = ray_rows

    if "chat" in phases:
        chat_levels = [int(x) for x in args.chat_levels.split(",")]
        expected_text = chat_expected(args.chat_tokens)
        chat: list[dict[str, Any]] = []
        for continuous in (True, False):
            server = start_chat_server(free_port(), continuous=continuous, max_streams=max(chat_levels))
            try:
                for streams in chat_levels:
                    got = asyncio.run(
                        chat_level(
                            server,
                            streams,
                            expected_text,
                            max_tokens=args.chat_tokens,
                            max_requests=max(2 * streams, 4) if args.quick else max(6 * streams, 12),
                            max_seconds=10.0 if args.quick else args.chat_seconds,
                        )
                    )
                    row = {
                        "server": got.server,
                        "streams": got.streams,
                        "requests": got.requests,
                        "wrong": got.wrong,
                        "failed": got.failed,
                        "tokens": got.tokens,
                        "seconds": got.seconds,
                        "tokens_per_s": got.tokens_per_s,
                        "ttft_p50_ms": got.pct(got.ttft, 50),
                        "ttft_p95_ms": got.pct(got.ttft, 95),
                        "latency_p50_ms": got.pct(got.latencies, 50),
                    }
                    chat.append(row)
                    print(json.dumps(row), flush=True)
            finally:
                server.stop()
        payload["chat"] = chat
        payload["chat_tokens"] = args.chat_tokens

    print()
    print(render(payload))
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def render(payload: dict[str, Any]) -> str:
    """The docs tables (docs/how-to/serve.md) for one ``--json`` output."""
    m = payload["machine"]
    out = [
        measured_line(f"{payload['measured']} UTC", m, str(m["load_average_before"]), payload["versions"]),
        "",
    ]
    levels = payload.get("levels")
    if levels:
        by = {(r["server"], r["clients"]): r for r in levels}
        out += [
            "**MiniLM embeddings, closed-loop clients** (requests/s; every response checked against in-process "
            "`predict`):",
            "",
            "| clients | aikit (batching) | aikit (no batching) | LitServe (batching) | aikit / LitServe "
            "| p99 ms aikit | p99 ms LitServe | wrong or lost |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c in sorted({r["clients"] for r in levels}):
            a, b, lit = (
                by.get(("aikit-batching", c)),
                by.get(("aikit-no-batching", c)),
                by.get(("litserve-batching", c)),
            )
            bad = sum(r["wrong"] + r["failed"] for r in (a, b, lit) if r)
            ratio = f"{a['throughput'] / lit['throughput']:.2f}x" if a and lit and lit["throughput"] else "-"
            out.append(f"| {c} | {a['throughput']:.1f} | " if a else f"| {c} | - | ")
            out[-1] += (
                (f"{b['throughput']:.1f} | " if b else "- | ")
                + (f"{lit['throughput']:.1f} | " if lit else "- | ")
                + f"{ratio} | "
                + (f"{a['p99_ms']:.0f} | " if a else "- | ")
                + (f"{lit['p99_ms']:.0f} | " if lit else "- | ")
                + f"{bad} |"
            )
        out.append("")
    ov = payload.get("overload")
    if ov:
        out += [
            f"**Overload**: {ov['sent']} requests open-loop at {ov['rate_per_s']}/s (4x the sustained rate), "
            f"deadline {ov['deadline_ms'] / 1000:g} s:",
            "",
            "| answers | 503 p50 ms | 503 p95 ms | 200 p95 ms | 200 p99 ms | 200 max ms | wrong | recovered |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            f"| {', '.join(f'{k}: {n}' for k, n in sorted(ov['statuses'].items()))} | {ov['p50_503_ms']} | "
            f"{ov['p95_503_ms']} | {ov['p95_200_ms']} | {ov['p99_200_ms']} | {ov['max_200_ms']} | {ov['wrong']} | "
            f"{ov['recovered_of_20']}/20 |",
            "",
        ]
    ray_rows = payload.get("ray")
    if ray_rows:
        out += [
            "**Ray Serve on the local cluster** (`aikit serve --engine ray --replicas N`, 1 CPU and 1 thread per "
            "replica, 32 closed-loop clients; the `X-Aikit-Replica` header of every answer shows the routing):",
            "",
            "| replicas | requests/s | p99 ms | answers per replica | wrong or lost |",
            "|---:|---:|---:|---|---:|",
        ]
        for r in ray_rows:
            out.append(
                f"| {r['replicas']} | {r['throughput']:.1f} | {r['p99_ms']:.0f} | "
                f"{' / '.join(map(str, r['answers_per_replica']))} | {r['wrong'] + r['failed']} |"
            )
        out.append("")
    chat = payload.get("chat")
    if chat:
        by2 = {(r["server"], r["streams"]): r for r in chat}
        out += [
            f"**SmolLM2 chat, concurrent streams** ({payload['chat_tokens']} new tokens each, greedy; every "
            "answer checked against in-process generation):",
            "",
            "| streams | tokens/s continuous | tokens/s one at a time | ratio | first token p50 ms continuous "
            "| first token p50 ms one at a time | wrong or failed |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for n in sorted({r["streams"] for r in chat}):
            c, o = by2.get(("aikit-continuous", n)), by2.get(("aikit-one-at-a-time", n))
            if not (c and o):
                continue
            gain = c["tokens_per_s"] / o["tokens_per_s"] if o["tokens_per_s"] else float("nan")
            out.append(
                f"| {n} | {c['tokens_per_s']:.1f} | {o['tokens_per_s']:.1f} | {gain:.2f}x | "
                f"{c['ttft_p50_ms']:.0f} | {o['ttft_p50_ms']:.0f} | {c['wrong'] + c['failed'] + o['wrong'] + o['failed']} |"
            )
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    main()
