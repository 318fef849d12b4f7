"""The ``aikit`` command line (typer). Commands live in ``cmd_*.py`` modules of this package,
each exposing ``register(app)``; plugins add more through ``aikit_register_commands``."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys

import typer

from ..errors import AikitError

__all__ = ["app", "main"]

app = typer.Typer(
    name="aikit",
    help="Load, compress, convert, measure and serve AI models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{__name__}.{info.name}").register(app)


_register_commands()


def _register_plugin_commands() -> None:
    from ..plugins import get_host

    host = get_host()
    for impl in host.pm.hook.aikit_register_commands.get_hookimpls():
        try:
            impl.function(cli=app)
        except Exception as exc:  # one plugin's broken command must not take the CLI down
            logging.getLogger("aikit.plugins").warning("plugin %r could not add commands: %s", impl.plugin_name, exc)


def main() -> None:
    """Entry point of the ``aikit`` script: aikit errors print one clear line and exit 1."""
    logging.basicConfig(level=logging.WARNING, format="aikit: %(message)s")
    try:
        _register_plugin_commands()
        app()
    except AikitError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
