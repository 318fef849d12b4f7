"""The ``aikit`` command line: info, plugins, predict, demo."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aikit.cli import app

runner = CliRunner()


def test_help_lists_core_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("info", "plugins", "predict", "demo"):
        assert command in result.output


def test_info_json_reports_versions_hardware_and_auto_backend() -> None:
    result = runner.invoke(app, ["info", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["versions"]["torch"] and data["machine"]["cores"] >= 1
    assert data["backends"]["torch"]["available"] is True
    assert data["auto_backend"] in data["backends"]
    assert isinstance(data["warnings"], list)


def test_predict_prints_one_result_per_input(tiny_model_dir: Callable[[str], Path]) -> None:
    model = str(tiny_model_dir("bert-sequence-classification"))
    result = runner.invoke(app, ["predict", model, "good movie", "bad film", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 2 and {"label", "score", "scores"} <= set(rows[0])


def test_predict_generation_option(tiny_model_dir: Callable[[str], Path]) -> None:
    result = runner.invoke(
        app, ["predict", str(tiny_model_dir("llama-causal-lm")), "hello", "--max-new-tokens", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)[0]["token_ids"]) <= 3


def test_errors_are_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "aikit", "predict", str(tmp_path / "missing" / "dir"), "x"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "error: model source" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_backend_error_lists_choices(tiny_model_dir: Callable[[str], Path]) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "aikit",
            "predict",
            str(tiny_model_dir("bert-sequence-classification")),
            "x",
            "--backend",
            "tpu",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "unknown backend 'tpu'; choose one of:" in proc.stderr


@pytest.mark.slow
def test_demo_runs_offline_and_reports_timings() -> None:
    proc = subprocess.run(
        # A short search per model keeps the suite bounded; the demo's default is 120 s each.
        [sys.executable, "-m", "aikit", "demo", "--max-new-tokens", "12", "--optimize-seconds", "30"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "'How do plants make energy?' -> 'Photosynthesis" in proc.stdout
    assert "tokens/s" in proc.stdout and "demo finished in" in proc.stdout
    assert proc.stdout.count("chosen: ") == 2  # each model ran on what its optimize search chose
    # A normal run prints only aikit's own lines: no torchao/torch import chatter, no progress bars
    # off a terminal, no warnings from third-party code (the issue this guards: all three were there).
    assert proc.stderr == "", proc.stderr
    for line in proc.stdout.splitlines():
        assert line.startswith(("[1/2]", "[2/2]", "      ", "demo finished")), line


def test_version_option_prints_the_installed_version() -> None:
    from importlib.metadata import version

    proc = subprocess.run([sys.executable, "-m", "aikit", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"aikit {version('aikit')}"


def test_verbosity_options_route_aikit_logs_without_touching_the_root_logger() -> None:
    import io
    import logging
    import warnings

    from aikit.cli._output import configure_output
    from aikit.errors import TruncationWarning

    root_handlers = list(logging.getLogger().handlers)
    aikit_logger = logging.getLogger("aikit")
    saved = (list(aikit_logger.handlers), aikit_logger.level, aikit_logger.propagate, warnings.showwarning)
    try:
        for verbosity, shown in ((-1, set()), (0, {"warn"}), (1, {"warn", "info"}), (2, {"warn", "info", "debug"})):
            stream = io.StringIO()
            configure_output(verbosity, stream)
            configure_output(verbosity, stream)  # idempotent: one handler, each line once
            log = logging.getLogger("aikit.demo")
            log.warning("warn")
            log.info("info")
            log.debug("debug")
            lines = stream.getvalue().splitlines()
            assert {line.removeprefix("aikit: ") for line in lines} == shown
            assert len(lines) == len(shown)
            warnings.showwarning(TruncationWarning("cut"), TruncationWarning, "x.py", 1)
            warnings.showwarning(UserWarning("third-party"), UserWarning, "x.py", 1)
            text = stream.getvalue()
            assert ("aikit: warning: cut" in text) == (verbosity >= 0)
            assert ("third-party" in text) == (verbosity >= 2)
        assert logging.getLogger().handlers == root_handlers
        assert logging.getLogger("torchao").level == logging.NOTSET  # -vv shows third-party logs again
    finally:
        aikit_logger.handlers[:] = saved[0]
        aikit_logger.setLevel(saved[1])
        aikit_logger.propagate = saved[2]
        warnings.showwarning = saved[3]
