"""Helpers shared by CLI commands: JSON output and parsing comma lists."""

from __future__ import annotations

import json
from typing import Any

import typer


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def split_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]
