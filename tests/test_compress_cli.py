"""``aikit compress`` end to end on a tiny real model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import aikit
from aikit.cli import app

TEXTS = [f"sentence {i}: the {'quick ' * (i % 5)}brown fox jumps over {i} lazy dogs" for i in range(16)]


def test_cli_compresses_chains_saves_and_prints_report(tiny_model_dir: Any, tmp_path: Path) -> None:
    calibration = tmp_path / "calibration.txt"
    calibration.write_text("\n".join(TEXTS) + "\n\n", encoding="utf-8")
    out = tmp_path / "small"
    args = [
        "compress", str(tiny_model_dir("bert-embedding")), "--task", "feature-extraction",
        "--strategy", "prune-structured:ffn=0.5,recovery_seconds=1", "-s", "int8-dynamic",
        "--calibration", str(calibration), "--max-quality-drop", "0.5", "--no-speed", "-o", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Compression report" in result.output and "prune-structured -> int8-dynamic" in result.output
    model = aikit.Model.load(out)
    assert [t["strategy"] for t in model.transformations] == ["prune-structured", "int8-dynamic"]
    assert model.embed(TEXTS[:2]).shape == (2, 32)


def test_cli_json_report(tiny_model_dir: Any, tmp_path: Path) -> None:
    calibration = tmp_path / "calibration.json"
    calibration.write_text(json.dumps(TEXTS), encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["compress", str(tiny_model_dir("bert-embedding")), "--task", "feature-extraction", "-s", "int8-weight-only",
         "--calibration", str(calibration), "--no-speed", "--json", "-o", str(tmp_path / "o")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["report"]["strategies"][0]["strategy"] == "int8-weight-only"
    assert np.isclose(data["report"]["quality_drop"], 1 - data["report"]["quality"]["cosine_min"])


@pytest.mark.parametrize(
    ("extra", "error", "words"),
    [
        (["-s", "int8-static"], aikit.CompressionError, "needs calibration data"),
        (["-s", "int8-dynamic", "--calibration", "missing.txt"], aikit.ConfigError, "does not exist"),
        (["-s", "nope"], aikit.UnknownNameError, "int8-dynamic"),
    ],
)
def test_cli_errors_are_clear(
    tiny_model_dir: Any, tmp_path: Path, extra: list[str], error: type[Exception], words: str
) -> None:
    args = [
        "compress",
        str(tiny_model_dir("bert-embedding")),
        "--task",
        "feature-extraction",
        "-o",
        str(tmp_path / "o"),
        *extra,
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and isinstance(result.exception, error) and words in str(result.exception)
