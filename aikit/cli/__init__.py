"""The ``aikit`` command line (typer). Commands live in ``cmd_*.py`` modules of this package,
each exposing ``register(app)``; plugins add more through ``aikit_register_commands``.

Plugins are loaded only when a command needs them: ``aikit --help``, ``aikit --version`` and a core
command's ``--help`` import neither the plugins nor torch. A command name aikit does not have
loads the plugins first, so that a plugin's command runs; ``aikit plugins`` lists them.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Any

import typer

from aikit.cli._output import configure_output
from aikit.errors import AikitError

__all__ = ["app", "main"]

app = typer.Typer(
    name="aikit",
    help="Load, compress, convert, measure and serve AI models.",
    epilog="Plugins can add commands: 'aikit plugins' lists them, 'aikit COMMAND --help' describes one.",
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


def _command_names(entry: Any) -> list[str]:
    """The command names one of ``app.registered_commands`` / ``app.registered_groups`` adds, as typer
    names them (a group added without a name contributes its own commands)."""
    name = getattr(entry, "name", None)
    instance = getattr(entry, "typer_instance", None)
    if instance is not None:  # a group: typer.Typer().add_typer(...)
        if not isinstance(name, str):
            name = instance.info.name
        if not isinstance(name, str):
            return [
                n for sub in (*instance.registered_commands, *instance.registered_groups) for n in _command_names(sub)
            ]
        return [name]
    if not isinstance(name, str):
        name = getattr(entry.callback, "__name__", None)
    return [typer.main.get_command_name(name)] if isinstance(name, str) else []


def _register_plugin_commands() -> None:
    """Add the plugins' commands to ``app`` (once per plugin host), refusing a name that aikit or an
    earlier plugin already has; the refused plugin is named in a warning and in ``aikit plugins``."""
    from aikit.plugins.host import get_host

    get_host().add_commands(app, _command_names)


def _core_command_names() -> set[str]:
    return {n for entry in (*app.registered_commands, *app.registered_groups) for n in _command_names(entry)}


def _needs_plugin_commands(argv: list[str]) -> bool:
    """Whether ``argv`` (without the program name) names a command aikit itself does not have.

    The global options take no values, so the first word not starting with ``-`` is the command.
    """
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    return command is not None and command not in _core_command_names()


def main() -> None:
    """Entry point of the ``aikit`` script: aikit errors print one clear line and exit 1."""
    configure_output(0)  # until the options are parsed: also covers plugin loading below
    try:
        if _needs_plugin_commands(sys.argv[1:]):
            _register_plugin_commands()
        app()
    except AikitError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
