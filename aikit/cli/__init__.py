"""The ``aikit`` command line (typer). Commands live in ``cmd_*.py`` modules of this package,
each exposing ``register(app)``; plugins add more through ``aikit_register_commands``."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys

import typer

from ..errors import AikitError
from ._output import configure_output

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


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"aikit {version('aikit')}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print aikit's version and exit."
    ),
    verbose: int = typer.Option(
        0, "--verbose", "-v", count=True, help="More output: -v aikit's progress notes, -vv debug and third-party logs."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only results and errors."),
) -> None:
    """Load, compress, convert, measure and serve AI models."""
    configure_output(-1 if quiet else verbose)


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
    configure_output(0)  # until the options are parsed: also covers plugin loading below
    try:
        _register_plugin_commands()
        app()
    except AikitError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
