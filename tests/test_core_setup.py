"""The README's two commands and CI stay in step."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_readme_has_two_commands_setup_demo_then_tests() -> None:
    first, second = _readme_commands()
    assert first.startswith("python3 -m venv") and first.endswith("aikit demo")
    assert second.startswith("python3 -m venv") and second.endswith("pytest")
    for command in (first, second):  # torch first, or pip pulls a multi-GB CUDA build
        assert command.index("pip install torch==2.13.0") < command.index("pip install -e")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = [line for line in ci if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert commands == [_readme_commands()[1]]
