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
        [sys.executable, "-m", "aikit", "demo", "--max-new-tokens", "12"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "'How do plants make energy?' -> 'Photosynthesis" in proc.stdout
    assert "tokens/s" in proc.stdout and "demo finished in" in proc.stdout
