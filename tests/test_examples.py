"""Every script in examples/ runs, on small inputs. Scripts that need the packaged real models are
marked slow; the chat and redaction examples reuse the session's model loads (they take a model
argument for exactly this), the others run as real subprocesses, as a user would run them."""

from __future__ import annotations

import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from aikit.testing import fresh_host

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, *args: str, timeout: int = 600) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _import(script: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"aikit_example_{Path(script).stem}", EXAMPLES / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quickstart(tmp_path: Path) -> None:
    out = _run("quickstart.py", str(tmp_path / "minilm-int8"))
    assert "Embedding 384" in out
    assert "cosine(original, int8): mean 0.9" in out  # int8 keeps embeddings within a few percent
    assert (tmp_path / "minilm-int8" / "aikit.json").is_file()
    assert "saved to" in out


@pytest.mark.slow
def test_semantic_search_with_a_compressed_model() -> None:
    out = _run("semantic_search.py", "--docs", "60", "-k", "2", "when is an assert statement ignored")
    assert "indexed 60 paragraphs" in out
    assert "compression unavailable" not in out  # int8-dynamic runs on this machine
    assert "? when is an assert statement ignored" in out
    assert "agree on the best paragraph for 1/1 queries" in out


@pytest.mark.slow
def test_digits_cnn_trains_compresses_evaluates_and_saves(tmp_path: Path) -> None:
    out = _run("digits_cnn.py", "--seconds", "2", "--out", str(tmp_path / "digits"))
    fp32, compressed, reloaded = (float(x) for x in re.findall(r"accuracy (\d\.\d+)", out))
    assert fp32 > 0.5  # two seconds of training already learn most digits (chance is 0.1)
    assert compressed > fp32 - 0.1
    assert reloaded == compressed
    assert (tmp_path / "digits" / "aikit.json").is_file()


@pytest.mark.slow
def test_chat_loop_answers_each_prompt_with_history(smollm2: Any, capsys: pytest.CaptureFixture[str]) -> None:
    chat = _import("chat.py")
    history: list[dict[str, str]] = []
    code = chat.main(
        ["--max-new-tokens", "8"], model=smollm2, stdin=io.StringIO("What is the capital of France?\n\nAnd of Italy?\n")
    )
    assert code == 0
    out = capsys.readouterr().out
    answers = [line[len("bot> ") :] for line in out.splitlines() if line.startswith("bot> ")]
    assert len(answers) == 2 and all(a.strip() for a in answers)
    assert "Paris" in answers[0]
    # reply() keeps the conversation: the second turn's prompt holds the first exchange.
    chat.reply(smollm2, history, "Say hello.", max_new_tokens=4)
    assert [m["role"] for m in history] == ["user", "assistant"]


@pytest.mark.slow
def test_redaction_middleware_example(minilm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    example = _import("redact_middleware.py")
    with fresh_host():  # the example registers plugins; keep them out of the session's host
        code = example.main(["mail ann@example.org or call +1 202 555 0143"], model=minilm)
    out = capsys.readouterr().out
    assert code == 0
    assert "model sees: 'mail [EMAIL] or call [PHONE]'" in out
    assert "identical to those of the masked texts: 1/1" in out
