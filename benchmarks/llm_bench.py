"""LLM decoding on the CPU: aikit's default GGUF path vs onnxruntime-genai (and llama.cpp, opt-in), one process.

SmolLM2-135M-Instruct (the packaged Q4_1 GGUF), ``--threads`` threads (default 2), every engine
warmed up, then ``--rounds`` interleaved rounds in alternating order; the best round counts.

- ``speed``: tokens/s at batch 1, greedy, ``--new-tokens`` (64) tokens, no stop at end-of-text, on
  input-grounded prompts (summarise / answer from a passage of Python's documentation) and open
  ones: aikit as ``Model.load(gguf)`` gives it (``backend.generate``, the loop ``predict`` drives),
  aikit with int8 activations (``Model.load(gguf, backend_options={"accuracy_level": 4})``: the
  same blocks, activations quantized per block of 32 as llama.cpp's CPU kernels do; reported
  next to the exact default in every section), aikit with ``speculative="prompt-lookup"``,
  onnxruntime-genai int4 from its own model builder (``int4_accuracy_level=4``, its documented
  CPU setting), onnxruntime-genai's C++ loop on aikit's
  own graph (the cached ``model.onnx`` + ``genai_config.json``), llama.cpp with ``--llama``.
- ``loop``: the decode loop alone: ms per step after the first token, aikit's loop and
  onnxruntime-genai's C++ loop on the same graph file (the cached ``model.onnx``), per prompt.
- ``step``: where one decode step's time goes (graph, greedy step, loop, ``predict``).
- ``ttft``: time to the first new token for a 512-token prompt.
- ``batch``: tokens/s at batch ``--batch`` (8), prompts cut to one length so every engine runs the same.
- ``ppl``: perplexity on held-out text (``aikit.sample_text``: Python's own docs) for aikit's graph
  (both forms), the float32 de-quantized model (torch), onnxruntime-genai's int4 graph and
  llama.cpp; the rendered table then states the issue's bar (llama.cpp's + 0.5%) against the
  int8-activation form.
- ``rss``: peak resident memory of a process that loads one engine and generates once. aikit's child
  is what a user runs with a warm cache (``Model.load(gguf)`` + ``predict`` on a text prompt: the
  tokenizer, chat template and detokenizing count; no torch is imported); onnxruntime-genai's builder
  child tokenizes with ``og.Tokenizer`` and llama.cpp's with its own tokenizer, at llama-cpp-python's
  default context (512); the genai C++ loop on aikit's graph is fed token ids (no tokenizer files there).
- ``bandwidth``: the machine's read bandwidth over a buffer the size of aikit's graph weights, and
  each graph's weight bytes per token times its best batch-1 tokens/s (how near memory it runs).

The rendered text ends with the issue's targets judged from these figures (ratios against the best
of llama.cpp and onnxruntime-genai's builder), so no verdict is typed by hand.

Usage (the figures in docs/how-to/gguf.md come from a quiet machine)::

    python benchmarks/llm_bench.py [speed step ttft batch ppl rss bandwidth] [--rounds 3] [--json docs/assets/llm-bench.json]
    python benchmarks/llm_bench.py --render docs/assets/llm-bench.json   # the markdown tables
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import LLAMA_NOTE, measured_line, open_llama

SECTIONS = ("speed", "loop", "step", "ttft", "batch", "ppl", "rss", "bandwidth")
DEFAULT = "aikit (Model.load default)"
INT8 = "aikit int8 activations (accuracy_level=4)"
INT8_PPL = "aikit int8 activations (accuracy_level=4: the GGUF's blocks, int8 activations)"
LLAMA = LLAMA_PPL = "llama.cpp (GGUF Q4_1)"
# the quality bar: perplexity at most llama.cpp's on the same file + 0.5%
PPL_BAR = 0.005
LOOKUP = "aikit + prompt-lookup"
GENAI = "onnxruntime-genai builder int4"
GENAI_OWN = "onnxruntime-genai C++ loop, aikit's graph"
AIKIT_OWN = "aikit's loop, aikit's graph"  # DecoderGraph on the cached model.onnx that GENAI_OWN runs
ANCHORS = (LLAMA, GENAI)  # the tools a user would otherwise install (the anchors)
SPEED_TARGET = 1.5  # batch-1 tokens/s against the best anchor


def _prompts() -> dict[str, str]:
    from aikit.sample_text import load_sentences

    passage = " ".join(load_sentences(12, seed=11))
    other = " ".join(load_sentences(10, seed=12))
    return {
        "grounded: summarise": f"Summarise this passage in a few sentences.\n\n{passage}",
        "grounded: answer": f"{other}\n\nUsing only the text above, explain what it says in your own words.",
        "open: explain": "Explain in a few sentences why the sky is blue.",
        "open: write": "Write a short story about a robot who learns to paint.",
    }


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Best-of-``rounds`` seconds per function after one warm-up call each; rounds alternate order."""
    for fn in fns.values():
        fn()
    return best_of(rounds, {name: partial(_seconds, fn) for name, fn in fns.items()})


def best_of(rounds: int, timers: dict[str, Callable[[], float]]) -> dict[str, float]:
    """The lowest of ``rounds`` figures from each timer (a call that measures and returns seconds),
    the timers run in turn, in alternating order from round to round."""
    best = dict.fromkeys(timers, float("inf"))
    names = list(timers)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            best[name] = min(best[name], timers[name]())
    return best


def _seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Engines:
    """Every engine, loaded once: aikit's default model and its int8-activation form, the float32 torch
    model, genai's two graphs."""

    def __init__(self, threads: int, with_llama: bool, with_genai: bool = True) -> None:
        import aikit
        from aikit.defaults import default_model_path

        self.threads = threads
        self.gguf = default_model_path("smollm2")
        start = time.perf_counter()
        self.aikit = aikit.Model.load(self.gguf, threads=threads)
        self.load_s = time.perf_counter() - start
        start = time.perf_counter()
        self.aikit_int8 = aikit.Model.load(self.gguf, threads=threads, backend_options={"accuracy_level": 4})
        self.load_int8_s = time.perf_counter() - start
        self.tokenizer = self.aikit.parts.tokenizer
        self.notes: list[str] = []
        self._torch: Any = None
        self.genai_int4 = self._genai_builder() if with_genai else None
        own = Path(self.aikit.backend.folder)  # type: ignore[attr-defined]
        self.genai_own = self._genai_model(own) if with_genai else None
        self.llama = self._llama() if with_llama else None
        if not with_llama:
            self.notes.append("llama.cpp not measured (opt-in: --llama; llama-cpp-python is not in the lock)")

    @property
    def torch(self) -> Any:
        if self._torch is None:
            import aikit

            self._torch = aikit.Model.load(self.gguf, backend="torch", threads=self.threads)
        return self._torch

    def chat_ids(self, prompt: str) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _genai_model(self, folder: Path) -> Any:
        try:
            import onnxruntime_genai as og
        except ImportError:
            self.notes.append("onnxruntime-genai is not installed: not measured")
            return None
        config = og.Config(str(folder))
        config.clear_providers()
        options = {"intra_op_num_threads": self.threads, "inter_op_num_threads": 1}
        config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
        return og.Model(config)

    def _genai_builder(self) -> Any:
        """onnxruntime-genai's builder, int4 with accuracy level 4, on the de-quantized weights."""
        try:
            import onnxruntime_genai  # noqa: F401
        except ImportError:
            return None
        from safetensors.torch import save_model

        tmp = Path(tempfile.mkdtemp(prefix="llm-bench-"))
        atexit.register(shutil.rmtree, tmp, True)
        hf = tmp / "hf"
        hf.mkdir()
        module = self.torch.backend.torch_module()
        module.config.save_pretrained(hf)
        save_model(module, str(hf / "model.safetensors"))
        self.tokenizer.save_pretrained(hf)
        config = json.loads((hf / "config.json").read_text())
        config.pop("quantization_config", None)
        config["architectures"] = config.get("architectures") or [type(module).__name__]
        (hf / "config.json").write_text(json.dumps(config))
        out = tmp / "int4"
        cmd = [
            sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf), "-o", str(out),
            "-p", "int4", "-e", "cpu", "-c", str(tmp / "cache"), "--extra_options", "int4_accuracy_level=4",
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            self.notes.append("onnxruntime-genai's builder failed: " + (done.stderr or done.stdout)[-400:])
            return None
        self.genai_int4_folder = out
        return self._genai_model(out)

    def _llama(self, *, logits_all: bool = False) -> Any:
        try:
            llama = open_llama(self.gguf, self.threads, n_ctx=2048, logits_all=logits_all)
        except ImportError as exc:
            self.notes.append(f"llama.cpp not measured: {exc}")
            return None
        if LLAMA_NOTE not in self.notes:
            self.notes.append(LLAMA_NOTE)
        return llama

    # ------------------------------------------------------------------ runners: (prompt ids, n) -> tokens
    def runners(self) -> dict[str, Callable[[list[list[int]], int], list[list[int]]]]:
        out: dict[str, Callable[[list[list[int]], int], list[list[int]]]] = {
            DEFAULT: lambda ids, n: self._aikit(ids, n, None),
            INT8: lambda ids, n: self._aikit(ids, n, None, self.aikit_int8),
            LOOKUP: lambda ids, n: self._aikit(ids, n, "prompt-lookup"),
        }
        if self.genai_int4 is not None:
            out[GENAI] = lambda ids, n: self._genai(self.genai_int4, ids, n)
        if self.genai_own is not None:
            out[GENAI_OWN] = lambda ids, n: self._genai(self.genai_own, ids, n)
        if self.llama is not None:
            out[LLAMA] = self._llama_run
        return out

    def _aikit(self, ids: list[list[int]], n: int, speculative: str | None, model: Any = None) -> list[list[int]]:
        """``n`` greedy tokens per row of ``ids`` from ``model`` (default: ``Model.load(gguf)``'s) via
        ``backend.generate``, the loop ``predict`` drives."""
        from aikit.contracts.options import GenerationOptions

        arrays = {"input_ids": np.asarray(ids), "attention_mask": np.ones((len(ids), len(ids[0])), dtype=np.int64)}
        options = GenerationOptions(max_new_tokens=n, speculative=speculative)
        steps = list((model or self.aikit).backend.generate(arrays, options))
        return np.stack(steps, axis=1).tolist()  # type: ignore[no-any-return]

    @staticmethod
    def genai_generator(model: Any, ids: list[list[int]], n: int) -> Any:
        """An onnxruntime-genai generator for ``n`` greedy tokens per row of ``ids``, prompts appended."""
        import onnxruntime_genai as og

        params = og.GeneratorParams(model)
        length = len(ids[0]) + n
        params.set_search_options(max_length=length, min_length=length, do_sample=False, batch_size=len(ids))
        generator = og.Generator(model, params)
        generator.append_tokens(np.asarray(ids, dtype=np.int32))
        return generator

    def _genai(self, model: Any, ids: list[list[int]], n: int) -> list[list[int]]:
        generator = self.genai_generator(model, ids, n)
        out: list[list[int]] = [[] for _ in ids]
        while not generator.is_done():
            generator.generate_next_token()
            for row, t in enumerate(generator.get_next_tokens()):
                out[row].append(int(t))
        return out

    def _llama_run(self, ids: list[list[int]], n: int) -> list[list[int]]:
        assert self.llama is not None
        rows = []
        for row in ids:
            self.llama.reset()
            got: list[int] = []
            for t in self.llama.generate(row, temp=0.0):
                got.append(int(t))
                if len(got) == n:
                    break
            rows.append(got)
        return rows


def bench_speed(e: Engines, rounds: int, new_tokens: int) -> list[dict[str, Any]]:
    rows = []
    for label, prompt in _prompts().items():
        ids = [e.chat_ids(prompt)]
        made: dict[str, list[int]] = {}

        def go(
            name: str,
            fn: Callable[[list[list[int]], int], list[list[int]]],
            ids: list[list[int]] = ids,
            made: dict[str, list[int]] = made,
        ) -> Callable[[], None]:
            return lambda: made.__setitem__(name, fn(ids, new_tokens)[0])

        best = interleaved({k: go(k, f) for k, f in e.runners().items()}, rounds)
        ref = made[DEFAULT]
        for name, seconds in best.items():
            same = next((i for i, (a, b) in enumerate(zip(ref, made[name])) if a != b), min(len(ref), len(made[name])))
            rows.append(
                {
                    "prompt": label,
                    "prompt_tokens": len(ids[0]),
                    "engine": name,
                    "tokens_per_s": len(made[name]) / seconds,
                    "tokens": len(made[name]),
                    "same_tokens_as_aikit": same,
                }
            )
            print(f"  {label} | {name}: {rows[-1]['tokens_per_s']:.1f} tokens/s", flush=True)
    return rows


def bench_loop(e: Engines, rounds: int, steps: int = 64) -> list[dict[str, Any]]:
    """The decode loop on one graph: ms per step after the first token, per prompt.

    aikit's loop (``DecoderGraph.generate``) and onnxruntime-genai's C++ loop both run the cached
    ``model.onnx`` (genai cannot feed the decoding graph's ``num_logits_to_keep``, so aikit's own
    default runs ``decode.onnx``; it is timed too, for reference). The first token is left out: it
    holds the prefill, where the two graphs' heads differ. Each engine in turn, alternating order,
    best of ``rounds`` after a warm-up; every engine's tokens must be the default's.
    """
    from aikit_onnxruntime.decoder import DecoderGraph
    from aikit_onnxruntime.session import make_session
    from aikit_onnxruntime.settings import OrtSettings

    from aikit.contracts.options import GenerationOptions

    if e.genai_own is None:
        return []
    folder = Path(e.aikit.backend.folder)  # type: ignore[attr-defined]
    layout = e.aikit.backend.decoder.layout  # type: ignore[attr-defined]
    session = make_session(folder / "model.onnx", OrtSettings(), threads=e.threads, device=None)
    rows = []
    for label, prompt in _prompts().items():
        ids = e.chat_ids(prompt)
        arrays = {"input_ids": np.asarray([ids]), "attention_mask": np.ones((1, len(ids)), dtype=np.int64)}
        options = GenerationOptions(max_new_tokens=steps)
        own = DecoderGraph(
            session, kv_heads=layout.kv_heads, head_dim=layout.head_dim, shared=True, capacity=len(ids) + steps
        )

        def genai_tokens(ids: list[int] = ids) -> Iterator[int]:
            generator = e.genai_generator(e.genai_own, [ids], steps)
            while not generator.is_done():
                generator.generate_next_token()
                yield int(generator.get_next_tokens()[0])

        streams: dict[str, Callable[[], Iterable[int]]] = {
            AIKIT_OWN: partial(
                _first_column, partial(own.generate, arrays["input_ids"], arrays["attention_mask"], options)
            ),
            GENAI_OWN: genai_tokens,
            DEFAULT: partial(_first_column, partial(e.aikit.backend.generate, arrays, options)),
        }
        made = {name: _per_step_after_first(stream)[1] for name, stream in streams.items()}  # warm-up, tokens
        best = best_of(rounds, {name: partial(_per_step_seconds, stream) for name, stream in streams.items()})
        for name in streams:
            same = made[name] == made[DEFAULT]
            rows.append({"prompt": label, "engine": name, "ms_per_step": best[name] * 1000, "same_tokens": same})
            print(f"  {label} | {name}: {best[name] * 1000:.2f} ms per step", flush=True)
    return rows


def _first_column(steps: Callable[[], Iterable[NDArray[np.int64]]]) -> Iterator[int]:
    """Row 0's token of each step of an aikit ``generate`` stream."""
    return (int(step[0]) for step in steps())


def _per_step_after_first(stream: Callable[[], Iterable[int]]) -> tuple[float, list[int]]:
    """Seconds per token after the first (which holds the prefill) of a lazy token stream, and its tokens."""
    it = iter(stream())
    tokens = [next(it)]
    start = time.perf_counter()
    tokens += list(it)
    return (time.perf_counter() - start) / (len(tokens) - 1), tokens


def _per_step_seconds(stream: Callable[[], Iterable[int]]) -> float:
    return _per_step_after_first(stream)[0]


def bench_step(e: Engines, rounds: int, steps: int = 64) -> list[dict[str, Any]]:
    """Where one batch-1 decode step's time goes on aikit's default graph (ms per token).

    ``graph``: ``run_with_iobinding`` alone, everything bound; ``greedy step``: a decode step as the
    greedy loop runs it (one id written in place, one mask view bound, the 49,152-wide logits row
    written by ONNX Runtime into a bound numpy buffer and ``numpy.argmax`` over it);
    ``generate() loop``: ``backend.generate`` per token (adds the generator and the step
    bookkeeping); ``predict()``: per token of ``Model.predict`` (adds tokenizing, incremental
    detokenizing and stop checks; stops at end of text).
    """
    from aikit_onnxruntime.decoder import _SharedRow

    from aikit.contracts.options import GenerationOptions

    graph = e.aikit.backend.decoder  # type: ignore[attr-defined]
    prompt = e.chat_ids("Explain in a few sentences why the sky is blue.")
    row = _SharedRow(graph, len(prompt) + 2)
    token = int(row.tokens(prompt, last=True)[-1])
    base = row.total

    def tokens() -> None:
        for _ in range(steps):
            row.total = base
            row.tokens([token], last=True)

    def bare() -> None:
        row.total = base
        row.tokens([token], last=True)  # binds the logits buffer and this step's inputs
        for _ in range(steps):
            graph.session.run_with_iobinding(row.binding)

    arrays = {"input_ids": np.asarray([prompt]), "attention_mask": np.ones((1, len(prompt)), dtype=np.int64)}
    options = GenerationOptions(max_new_tokens=steps + 1)
    per_step: dict[str, float] = {}

    def loop() -> None:
        it = iter(e.aikit.backend.generate(arrays, options))
        next(it)  # the prefill
        start = time.perf_counter()
        for _ in it:
            pass
        per_step["generate"] = min(per_step.get("generate", 1e9), (time.perf_counter() - start) / steps)

    def predict() -> None:
        start = time.perf_counter()
        out = e.aikit.predict("Explain in a few sentences why the sky is blue.", max_new_tokens=steps)
        took = (time.perf_counter() - start) / max(1, len(out.token_ids))
        per_step["predict"] = min(per_step.get("predict", 1e9), took)

    best = interleaved({"graph": bare, "tokens": tokens, "generate": loop, "predict": predict}, rounds)
    names = {
        "graph": "graph only (run_with_iobinding)",
        "tokens": "greedy step (graph + logits row bound + numpy argmax)",
    }
    rows = [{"part": names[k], "ms_per_token": best[k] / steps * 1000} for k in names]
    rows.append({"part": "generate() loop, per token after prefill", "ms_per_token": per_step["generate"] * 1000})
    rows.append({"part": "predict(), per token incl. prefill and text", "ms_per_token": per_step["predict"] * 1000})
    return rows


def _long_ids(e: Engines, length: int, seed: int = 21) -> list[int]:
    from aikit.sample_text import load_sentences

    ids: list[int] = []
    sentences = load_sentences(400, seed=seed)
    while len(ids) < length and sentences:
        ids += e.tokenizer(" " + sentences.pop(), add_special_tokens=False)["input_ids"]
    return ids[:length]


def bench_ttft(e: Engines, rounds: int, length: int = 512) -> list[dict[str, Any]]:
    ids = [_long_ids(e, length)]
    runners = {k: v for k, v in e.runners().items() if "prompt-lookup" not in k}
    best = interleaved({k: partial(f, ids, 1) for k, f in runners.items()}, rounds)
    return [{"engine": k, "prompt_tokens": length, "ttft_ms": v * 1000} for k, v in best.items()]


def bench_batch(e: Engines, rounds: int, new_tokens: int, batch: int) -> list[dict[str, Any]]:
    prompts = list(_prompts().values())
    rows = [e.chat_ids(prompts[i % len(prompts)] + f" ({i})") for i in range(batch)]
    cut = min(len(r) for r in rows)
    ids = [r[-cut:] for r in rows]  # one length: no padding, so every engine runs the same batch
    runners = {k: v for k, v in e.runners().items() if "prompt-lookup" not in k and "llama" not in k}
    best = interleaved({k: partial(f, ids, new_tokens) for k, f in runners.items()}, rounds)
    return [{"engine": k, "batch": batch, "tokens_per_s": batch * new_tokens / v} for k, v in best.items()]


def bench_ppl(e: Engines, windows: int = 8, length: int = 256) -> list[dict[str, Any]]:
    """Perplexity over ``windows`` windows of ``length`` tokens of held-out docs text (every position scored)."""
    texts = [_long_ids(e, length, seed=100 + w) for w in range(windows)]

    def ppl(logits_of: Callable[[np.ndarray], np.ndarray]) -> float:
        nll, count = 0.0, 0
        for ids in texts:
            x = np.asarray([ids], dtype=np.int64)
            logits = logits_of(x)[0, :-1].astype(np.float64)
            m = logits.max(-1, keepdims=True)
            logp = logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))
            nll -= float(logp[np.arange(len(ids) - 1), ids[1:]].sum())
            count += len(ids) - 1
        return float(np.exp(nll / count))

    def forward(model: Any) -> Callable[[np.ndarray], np.ndarray]:
        return lambda x: model.backend.forward({"input_ids": x, "attention_mask": np.ones_like(x)})["logits"]

    rows: list[dict[str, Any]] = [
        {"engine": "aikit (Model.load default: the GGUF's blocks)", "perplexity": ppl(forward(e.aikit))},
        {"engine": "float32 de-quantized (torch)", "perplexity": ppl(forward(e.torch))},
        {"engine": INT8_PPL, "perplexity": ppl(forward(e.aikit_int8))},
    ]
    folder = getattr(e, "genai_int4_folder", None)
    if folder is not None:
        import onnxruntime as ort
        from aikit_onnxruntime.decoder import DecoderGraph

        genai = json.loads((folder / "genai_config.json").read_text())["model"]
        so = ort.SessionOptions()
        so.intra_op_num_threads = e.threads
        session = ort.InferenceSession(str(folder / "model.onnx"), so, providers=["CPUExecutionProvider"])
        graph = DecoderGraph(
            session,
            kv_heads=int(genai["decoder"]["num_key_value_heads"]),
            head_dim=int(genai["decoder"]["head_size"]),
            shared=True,
            capacity=length,
        )
        rows.append(
            {
                "engine": "onnxruntime-genai builder int4",
                "perplexity": ppl(lambda x: graph.logits(x, np.ones_like(x))),
            }
        )
    if e.llama is not None:  # a second instance that keeps the logits of every position
        llama = e._llama(logits_all=True)

        def llama_logits(x: np.ndarray) -> np.ndarray:
            llama.reset()
            llama.eval([int(t) for t in x[0]])
            return np.asarray(llama.scores[: x.shape[1]], dtype=np.float32)[None]

        rows.append({"engine": LLAMA_PPL, "perplexity": ppl(llama_logits)})
    base = next(r["perplexity"] for r in rows if r["engine"] == "float32 de-quantized (torch)")
    for r in rows:
        r["vs_float32"] = r["perplexity"] / base - 1
    return rows


def bench_rss(e: Engines) -> list[dict[str, Any]]:
    """Each engine in a fresh process (so nothing else loaded counts): load, generate 64 tokens, peak RSS.

    Engines a user runs from text hold their tokenizer (aikit's, onnxruntime-genai's ``og.Tokenizer``,
    llama.cpp's built-in one) and go from the chat prompt's text to the answer's text; the genai C++
    loop on aikit's graph has no tokenizer files in that folder and is fed token ids.
    """
    children = {DEFAULT: "aikit", INT8: "aikit-int8"}
    children[GENAI_OWN] = f"genai:{e.aikit.backend.folder}"  # type: ignore[attr-defined]
    if getattr(e, "genai_int4_folder", None) is not None:
        children[GENAI] = f"genai:{e.genai_int4_folder}"
    if e.llama is not None:
        children[LLAMA] = f"llama:{e.gguf}"
    rows = []
    for name, child in children.items():
        done = subprocess.run(
            [sys.executable, __file__, "--rss-child", child, "--threads", str(e.threads)],
            capture_output=True,
            text=True,
            check=False,
        )
        line = next((x for x in done.stdout.splitlines() if x.startswith("RSS ")), None)
        if line is None:
            e.notes.append(f"peak memory of {name} not measured: {(done.stderr or done.stdout)[-300:]}")
        rows.append({"engine": name, "peak_rss_mb": float(line.split()[1]) if line else None})
    return rows


def _weight_bytes(graph: Path) -> int:
    """Bytes of the initializers that ``graph``'s matrix products (``MatMulNBits``, ``MatMul``) read: the
    weights a decode step reads once each (the embedding table is read one row per token, so left out)."""
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    used = {i for n in model.graph.node if n.op_type in ("MatMulNBits", "MatMul") for i in n.input}
    total = 0
    for t in model.graph.initializer:
        if t.name in used:
            count = int(np.prod(t.dims)) if t.dims else 1
            total += count * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    return total


def bench_bandwidth(e: Engines, speed: list[dict[str, Any]], rounds: int = 5) -> dict[str, Any]:
    """How near memory bandwidth aikit's decode steps run: the machine's read bandwidth over a buffer the
    size of the default graph's weights (torch's multi-threaded sum, ``threads`` threads), the weight bytes
    each graph reads per token, and those bytes times the best batch-1 tokens/s of the speed section."""
    import torch

    graphs = {DEFAULT: e.aikit.backend.graph_path("model"), INT8: e.aikit_int8.backend.graph_path("model")}  # type: ignore[attr-defined]
    genai_folder = getattr(e, "genai_int4_folder", None)
    if genai_folder is not None and (genai_folder / "model.onnx").is_file():
        graphs[GENAI] = genai_folder / "model.onnx"
    weights = {name: _weight_bytes(path) for name, path in graphs.items()}
    torch.set_num_threads(e.threads)
    buffer = torch.ones(weights[DEFAULT] // 4)
    read = buffer.numel() * 4 / interleaved({"read": buffer.sum}, rounds)["read"] / 1e9
    rows = []
    for name, size in weights.items():
        tps = max((r["tokens_per_s"] for r in speed if r["engine"] == name), default=None)
        rows.append(
            {
                "engine": name,
                "weight_mb_per_token": size / 1e6,
                "best_tokens_per_s": tps,
                "gb_per_s": None if tps is None else size * tps / 1e9,
            }
        )
    return {"buffer_mb": buffer.numel() * 4 / 1e6, "read_gb_per_s": read, "threads": e.threads, "rows": rows}


def rss_child(engine: str, threads: int) -> None:
    """Load one engine, generate 64 tokens once, print this process's peak RSS (MB).

    The parent has loaded the model, so aikit's child takes the warm-cache path (``Model.load`` opens
    the cached graph without torch or the float32 module), as a user's later loads do.
    """
    prompt = "Explain in a few sentences why the sky is blue."
    if engine in ("aikit", "aikit-int8"):
        import aikit
        from aikit.defaults import default_model_path

        options = {"accuracy_level": 4} if engine == "aikit-int8" else {}
        model = aikit.Model.load(default_model_path("smollm2"), threads=threads, backend_options=options)
        model.predict(prompt, max_new_tokens=64)
    elif engine.startswith("llama:"):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter  # type: ignore[import-not-found,unused-ignore]

        llama = open_llama(engine.removeprefix("llama:"), threads, n_ctx=512)  # llama-cpp-python's default
        specials = {
            name: llama.detokenize([i], special=True).decode()
            for name, i in (("eos_token", llama.token_eos()), ("bos_token", llama.token_bos()))
        }
        formatter: Any = Jinja2ChatFormatter(llama.metadata["tokenizer.chat_template"], **specials)
        text = formatter(messages=[{"role": "user", "content": prompt}]).prompt  # the GGUF's own template
        ids = llama.tokenize(text.encode(), add_bos=False, special=True)
        out = []
        for t in llama.generate(ids, temp=0.0):
            out.append(t)
            if len(out) == 64:
                break
        llama.detokenize(out)
    else:
        import onnxruntime_genai as og

        folder = Path(engine.removeprefix("genai:"))
        e = Engines.__new__(Engines)
        e.threads, e.notes = threads, []
        model = e._genai_model(folder)
        if (folder / "tokenizer.json").is_file():  # the builder's folder: text in, text out, as its users run it
            tokenizer = og.Tokenizer(model)
            chat = json.dumps([{"role": "user", "content": prompt}])
            ids = tokenizer.encode(tokenizer.apply_chat_template(chat, add_generation_prompt=True))
            tokenizer.decode(e._genai(model, [list(ids)], 64)[0])
        else:
            e._genai(model, [[1, 2, 3, 4, 5, 6, 7, 8]], 64)
    # VmHWM belongs to this process's memory map; ru_maxrss would carry the parent's peak over the fork
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next((int(x.split()[1]) / 1024 for x in status if x.startswith("VmHWM:")), None)
    print(f"RSS {peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")


def render(results: dict[str, Any]) -> str:
    ctx = results["context"]
    lines = [
        measured_line(
            ctx["date"],
            ctx["machine"],
            f"{ctx['load_average_before'][0]:.2f}",
            ctx["versions"],
            threads=ctx["threads"],
        ),
        "",
        f"`Model.load(gguf)` took {ctx['load_s']:.1f} s in this process"
        # runs from before the int8-activation engine have no load time for it
        + (f', `backend_options={{"accuracy_level": 4}}` {ctx["load_int8_s"]:.1f} s' if "load_int8_s" in ctx else "")
        + " (the graph was cached).",
        "",
    ]
    if "speed" in results:
        engines = list(dict.fromkeys(r["engine"] for r in results["speed"]))
        prompts = list(dict.fromkeys(r["prompt"] for r in results["speed"]))
        lines += [
            f"Tokens/s, batch 1, greedy, {results['speed'][0]['tokens']} new tokens (same tokens as aikit's: "
            "the length of the common prefix):",
            "",
            "| prompt | " + " | ".join(engines) + " |",
            "|---|" + "---:|" * len(engines),
        ]
        cell = {(r["prompt"], r["engine"]): r for r in results["speed"]}
        for p in prompts:
            row = [f"{cell[p, e]['tokens_per_s']:.1f} ({cell[p, e]['same_tokens_as_aikit']})" for e in engines]
            lines.append(f"| {p} | " + " | ".join(row) + " |")
        lines.append("")
    if results.get("loop"):
        engines = list(dict.fromkeys(r["engine"] for r in results["loop"]))
        prompts = list(dict.fromkeys(r["prompt"] for r in results["loop"]))
        cell = {(r["prompt"], r["engine"]): r for r in results["loop"]}
        lines += [
            "The decode loop, batch 1: ms per step after the first token (aikit's loop and onnxruntime-genai's "
            "C++ loop on the same `model.onnx`; aikit's default runs its decoding graph, `decode.onnx`):",
            "",
            "| prompt | " + " | ".join(engines) + " |",
            "|---|" + "---:|" * len(engines),
        ]
        for p in prompts:
            row = [
                f"{cell[p, e]['ms_per_step']:.2f}" + ("" if cell[p, e]["same_tokens"] else " (other tokens)")
                for e in engines
            ]
            lines.append(f"| {p} | " + " | ".join(row) + " |")
        lines.append("")
    for key, title, col, fmt in (
        ("step", "One decode step of aikit's default graph, batch 1 (ms per token)", "ms_per_token", "{:.2f}"),
        ("ttft", "Time to first token, 512-token prompt", "ttft_ms", "{:.0f} ms"),
        ("batch", "Tokens/s at batch 8 (all rows together)", "tokens_per_s", "{:.1f}"),
        ("ppl", "Perplexity on held-out text (Python's docs, every position)", "perplexity", "{:.3f}"),
        ("rss", "Peak resident memory of a process running one engine", "peak_rss_mb", "{:.0f} MB"),
    ):
        if key in results:
            lines += [f"{title}:", "", "| engine | value |", "|---|---:|"]
            lines += [
                f"| {r.get('engine', r.get('part'))} | {'-' if r[col] is None else fmt.format(r[col])} |"
                for r in results[key]
            ]
            lines.append("")
    lines += _ppl_bar(results.get("ppl", []))
    lines += _bandwidth(results.get("bandwidth"))
    lines += _targets(results)
    lines += [f"- {n}" for n in results.get("notes", [])]
    return "\n".join(lines)


def _bandwidth(found: dict[str, Any] | None) -> list[str]:
    if not found:
        return []
    lines = [
        f"Memory traffic of a decode step: this machine read a {found['buffer_mb']:.0f} MB buffer at "
        f"{found['read_gb_per_s']:.1f} GB/s ({found['threads']} threads, best of 5); "
        "each graph's matrix-product weights (read once per token) times its best batch-1 tokens/s above:",
        "",
        "| engine | weights read per token | best tokens/s | weight traffic | share of the read bandwidth |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in found["rows"]:
        traffic = r["gb_per_s"]
        lines.append(
            f"| {r['engine']} | {r['weight_mb_per_token']:.0f} MB | "
            + (
                "- | - | - |"
                if traffic is None
                else f"{r['best_tokens_per_s']:.1f} | {traffic:.1f} GB/s | {traffic / found['read_gb_per_s']:.0%} |"
            )
        )
    return [*lines, ""]


def _targets(results: dict[str, Any]) -> list[str]:
    """The issue's targets, as ratios computed from the run (so no figure is typed by hand).

    The anchors are llama.cpp and onnxruntime-genai's builder int4; the best anchor is the faster
    (or for time to first token and memory, the lower) of those the run measured.
    """
    lines: list[str] = []
    speed = {(r["prompt"], r["engine"]): r["tokens_per_s"] for r in results.get("speed", [])}
    # the loop target: per step on one graph when the run timed that ("loop"), else end to end (older runs)
    step = {(r["prompt"], r["engine"]): r["ms_per_step"] for r in results.get("loop", [])}
    same_graph = "same graph, per step" if step else "end to end, aikit on its decoding graph"
    prompts = list(dict.fromkeys(p for p, _ in speed))
    anchors = [a for a in ANCHORS if any((p, a) in speed for p in prompts)]
    if prompts and anchors:
        lines += [
            "Against the targets, batch 1 (ratios of the tokens/s above):",
            "",
            "| prompt | best anchor | default ÷ best anchor | int8 ÷ best anchor | aikit's loop ÷ genai's C++ loop "
            f"({same_graph}) | prompt-lookup ÷ default |",
            "|---|---|---:|---:|---:|---:|",
        ]
        met = {DEFAULT: 0, INT8: 0}
        loop_met = 0
        for p in prompts:
            best = max(anchors, key=lambda a: speed.get((p, a), 0.0))
            top = speed[p, best]

            def ratio(a: str, b: float | None, p: str = p) -> str:
                value = speed.get((p, a))
                return "-" if value is None or not b else f"{value / b:.2f}x"

            for engine in met:
                met[engine] += speed.get((p, engine), 0.0) >= SPEED_TARGET * top
            if step:  # a speed ratio: genai's time per step over aikit's
                ours, theirs = step.get((p, AIKIT_OWN)), step.get((p, GENAI_OWN))
                loop = None if ours is None or theirs is None else theirs / ours
            else:
                own = speed.get((p, GENAI_OWN))
                loop = None if own is None else speed.get((p, DEFAULT), 0.0) / own
            loop_met += loop is not None and loop >= 1.0
            lines.append(
                f"| {p} | {best} ({top:.1f}) | {ratio(DEFAULT, top)} | {ratio(INT8, top)} | "
                f"{'-' if loop is None else f'{loop:.2f}x'} | {ratio(LOOKUP, speed.get((p, DEFAULT)))} |"
            )
        lines += [
            "",
            f"- At least {SPEED_TARGET}x the best anchor: the default on {met[DEFAULT]} of {len(prompts)} prompts, "
            f"int8 activations on {met[INT8]} of {len(prompts)}.",
            f"- aikit's loop at least 1.0x genai's C++ loop ({same_graph}): {loop_met} of {len(prompts)} prompts.",
        ]
    for key, col, what, unit in (
        ("ttft", "ttft_ms", "Time to first token", "ms"),
        ("rss", "peak_rss_mb", "Peak memory", "MB"),
    ):
        values = {r["engine"]: r[col] for r in results.get(key, []) if r.get(col) is not None}
        measured = [a for a in ANCHORS if a in values]
        if not measured or DEFAULT not in values:
            continue
        best = min(measured, key=values.__getitem__)
        parts = []
        for engine, label in ((DEFAULT, "the default"), (INT8, "int8 activations")):
            if engine in values:
                verdict = "met" if values[engine] <= values[best] else "**not met**"
                parts.append(f"{label} {values[engine]:.0f} {unit} ({values[engine] / values[best]:.2f}x, {verdict})")
        lines.append(f"- {what} against the best anchor, {best} ({values[best]:.0f} {unit}): " + "; ".join(parts) + ".")
    batch = {r["engine"]: r["tokens_per_s"] for r in results.get("batch", [])}
    if GENAI in batch and DEFAULT in batch:
        got = ", ".join(
            f"{label} {batch[e] / batch[GENAI]:.2f}x"
            for e, label in ((DEFAULT, "the default"), (INT8, "int8"))
            if e in batch
        )
        lines.append(f"- Batch 8 against genai's builder int4: {got}.")
    return lines + ([""] if lines else [])


def _ppl_bar(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's quality bar against the int8-activation row, when a run measured both (else nothing)."""
    values = {r["engine"]: r["perplexity"] for r in rows if r.get("perplexity") is not None}
    if INT8_PPL not in values or LLAMA_PPL not in values:
        return []
    bar = values[LLAMA_PPL] * (1 + PPL_BAR)
    got = values[INT8_PPL]
    verdict = "within it" if got <= bar else "**above it**"
    return [
        f"Quality bar (llama.cpp's perplexity + {PPL_BAR:.1%}): {bar:.3f}; aikit with int8 activations: "
        f"{got:.3f}, {verdict}.",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", default=list(SECTIONS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--ppl-windows", type=int, default=8)
    parser.add_argument("--llama", action="store_true", help="also time llama.cpp (off: a crashing build ends the run)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--render", type=Path, help="print the markdown of a --json result and exit")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render:
        print(render(json.loads(args.render.read_text())))
        return
    if args.rss_child:
        rss_child(args.rss_child, args.threads)
        return
    from aikit.sysinfo import installed_versions, machine_info

    try:
        from importlib.metadata import version

        genai_version: str | None = version("onnxruntime-genai")
    except Exception:
        genai_version = None
    context = {
        "load_average_before": os.getloadavg(),
        "machine": machine_info(),
        "versions": {**installed_versions(), "onnxruntime-genai": genai_version},
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "threads": args.threads,
    }
    engines = Engines(args.threads, args.llama, with_genai=set(args.sections) != {"step"})
    context["load_s"] = engines.load_s
    context["load_int8_s"] = engines.load_int8_s
    results: dict[str, Any] = {"context": context}
    if "speed" in args.sections:
        results["speed"] = bench_speed(engines, args.rounds, args.new_tokens)
    if "loop" in args.sections:
        results["loop"] = bench_loop(engines, args.rounds)
    if "step" in args.sections:
        results["step"] = bench_step(engines, args.rounds)
    if "ttft" in args.sections:
        results["ttft"] = bench_ttft(engines, args.rounds)
    if "batch" in args.sections:
        results["batch"] = bench_batch(engines, args.rounds, args.new_tokens, args.batch)
    if "ppl" in args.sections:
        results["ppl"] = bench_ppl(engines, args.ppl_windows)
    if "rss" in args.sections:
        results["rss"] = bench_rss(engines)
    if "bandwidth" in args.sections:
        results["bandwidth"] = bench_bandwidth(engines, results.get("speed", []))
    results["notes"] = engines.notes
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    print(render(results))


if __name__ == "__main__":
    main()
