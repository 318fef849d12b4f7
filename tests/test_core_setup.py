"""The README's two commands and CI stay in step."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

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
        assert command.index("torch==2.13.0") < command.index(" -e ")
        installs = [part.strip() for part in command.split("&&") if part.strip().startswith("pip install")]
        assert len(installs) == 3
        for install in installs:  # every install is held to the lock
            assert install.startswith("pip install -c requirements-lock.txt "), install


def _lock() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "requirements-lock.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            assert pinned, f"lock line {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = Version(pinned)
    return pins


def test_lock_pins_every_declared_requirement_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += [r for r in extra if not r.startswith("aikit[")]
    pins = _lock()
    for text in declared:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is declared in pyproject.toml but not locked: run tools/lock.sh"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"the lock pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}: run tools/lock.sh"
        )


def test_lock_has_no_local_version_labels() -> None:
    # "2.13.0+cpu" would refuse a CUDA build of the same release; the lock names releases only.
    text = (ROOT / "requirements-lock.txt").read_text(encoding="utf-8")
    assert not re.search(r"==[^\s]*\+", text)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = [line for line in ci if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert commands == [_readme_commands()[1]]
