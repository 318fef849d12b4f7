"""Recipe: steer ``backend="auto"`` and add a command.

``aikit_choose_backend`` sees the candidate backends for every ``auto`` decision; this policy
keeps text-generation models off a backend you name in ``AIKIT_RECIPE_AVOID_BACKEND`` (say, one
that is slow for decoding on your hardware). ``aikit_register_commands`` adds ``aikit candidates``.
"""

from __future__ import annotations

import os
from typing import Any

from aikit import ModelParts, Task, hookimpl


# --8<-- [start:choose]
@hookimpl
def aikit_choose_backend(parts: ModelParts, task: type[Task], candidates: list[str]) -> str | None:
    avoid = os.environ.get("AIKIT_RECIPE_AVOID_BACKEND")
    if task.generative and avoid in candidates:
        others = [c for c in candidates if c != avoid]
        return others[0] if others else None
    return None  # no opinion: the next plugin decides, or the highest-priority candidate wins


# --8<-- [end:choose]


# --8<-- [start:command]
@hookimpl
def aikit_register_commands(cli: Any) -> None:
    import typer

    app: typer.Typer = cli

    @app.command()
    def candidates(generative: bool = typer.Option(False, help="Only backends that can generate text.")) -> None:
        """List the registered backends in the order backend="auto" considers them."""
        from aikit.plugins.host import get_host

        host = get_host()
        for cls in sorted(host.backends.values(), key=lambda c: -c.priority):
            if generative and not cls.can_generate:
                continue
            reason = cls.unavailable_reason()
            typer.echo(f"{cls.name}\t{cls.priority}\t{'available' if reason is None else reason}")


# --8<-- [end:command]
