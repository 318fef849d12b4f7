"""mkdocs hook: render the ``aikit`` command reference from the live typer application.

``docs/reference/cli.md`` holds the marker ``<!-- aikit-cli-commands -->``; at build time it is
replaced by one section per command (built-in ``cmd_*.py`` modules and commands that installed
plugins add through ``aikit_register_commands``), so the page can never fall behind the code.
``render_cli_reference`` is also used by ``tests/test_docs_reference.py``.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- aikit-cli-commands -->"


def _type_name(param: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    if annotation is not None:
        return annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return str(getattr(getattr(param, "type", None), "name", "text"))


def _param_row(param: Any) -> str:
    if param.param_type_name == "argument":
        name = f"`{param.name.upper()}`"
    else:
        name = " / ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
    default = param.default
    shown = "" if default is None or callable(default) or param.required else f"`{default}`"
    required = "yes" if param.required else ""
    help_text = (getattr(param, "help", None) or "").replace("|", "\\|").replace("\n", " ")
    return f"| {name} | {_type_name(param)} | {required} | {shown} | {help_text} |"


def cli_commands() -> dict[str, Any]:
    """Every ``aikit`` command, plugin commands included, by name (typer's click commands)."""
    import typer

    from aikit.cli import _register_plugin_commands, app

    _register_plugin_commands()
    group = typer.main.get_command(app)
    return dict(sorted(group.commands.items()))  # type: ignore[attr-defined]


def _usage(full: str, params: list[Any]) -> str:
    pieces = [full]
    if any(p.param_type_name == "option" for p in params):
        pieces.append("[OPTIONS]")
    for p in params:
        if p.param_type_name == "argument":
            pieces.append(p.name.upper() + ("..." if p.nargs == -1 else ""))
    return " ".join(pieces)


def render_cli_reference() -> str:
    """Markdown: a section per command with its help text and a table of its parameters."""
    sections = []
    for name, command in cli_commands().items():
        if getattr(command, "hidden", False):
            continue
        subcommands = getattr(command, "commands", None)
        entries = sorted(subcommands.items()) if subcommands else [("", command)]
        for sub_name, cmd in entries:
            full = f"aikit {name} {sub_name}".strip()
            params = [p for p in cmd.params if p.name != "help"]
            lines = [f"## `{full}`", "", (cmd.help or "").strip(), "", "```text", _usage(full, params), "```", ""]
            if params:
                lines += ["| Parameter | Type | Required | Default | Description |", "|---|---|---|---|---|"]
                lines += [_param_row(p) for p in params]
                lines.append("")
            sections.append("\n".join(lines))
    return "\n".join(sections)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, render_cli_reference())
    return markdown
