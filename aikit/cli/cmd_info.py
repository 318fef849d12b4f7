"""``aikit info`` and ``aikit plugins``."""

from __future__ import annotations

from typing import Any

import typer

from aikit.cli._common import echo_json


def register(app: typer.Typer) -> None:
    @app.command()
    def info(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of text.")) -> None:
        """Versions, hardware, plugins, the backend "auto" picks, and version conflicts."""
        from aikit.plugins.host import get_host
        from aikit.sysinfo import installed_versions, machine_info, version_warnings

        host = get_host()
        backends = {}
        for name, cls in sorted(host.backends.items(), key=lambda kv: -kv[1].priority):
            reason = cls.unavailable_reason()
            backends[name] = {"available": reason is None, "reason": reason, "priority": cls.priority}
        auto = next((n for n, b in backends.items() if b["available"]), None)
        data: dict[str, Any] = {
            "versions": installed_versions(),
            "machine": machine_info(with_gpu=True),
            "backends": backends,
            "auto_backend": auto,
            "plugins": {n: p.to_dict() for n, p in host.plugins.items()},
            "warnings": version_warnings()
            + [f"plugin {p.name!r} failed: {p.error}" for p in host.plugins.values() if p.error],
        }
        if json_out:
            echo_json(data)
            return
        typer.echo("aikit " + str(data["versions"]["aikit"]))
        typer.echo("versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items() if v and k != "aikit"))
        m = data["machine"]
        typer.echo(f"machine: {m['cpu']} x{m['cores']}, {m['memory_total_gb']} GiB, flags {' '.join(m['cpu_flags'])}")
        gpu = m["gpu"]
        typer.echo("gpu: " + (", ".join(gpu["devices"]) if gpu.get("cuda") else f"none ({gpu.get('reason')})"))
        for name, b in backends.items():
            state = "available" if b["available"] else f"unavailable: {b['reason']}"
            typer.echo(f"backend {name}: {state}")
        typer.echo(
            f"backend='auto' picks: {auto}"
            + (" (CUDA GPU found)" if auto == "cuda" else " (no usable GPU)" if auto else "")
        )
        for w in data["warnings"]:
            typer.echo(f"warning: {w}")

    @app.command()
    def plugins(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
        """Every plugin with its version, everything it added, and load errors.

        Added: backends, tasks, strategies, loaders, metrics, dataset formats, explainers, commands,
        middleware (aikit_predict wrappers) and other hooks."""
        from aikit.cli import _register_plugin_commands
        from aikit.errors import RegistrationError
        from aikit.plugins.host import get_host

        host = get_host()
        _register_plugin_commands()  # the plugins' commands, checked as ``aikit COMMAND`` would add them
        try:
            from aikit.measure.explain import registered_explainers

            registered_explainers()  # records each plugin's explainers on its PluginInfo
        except RegistrationError as exc:  # reported under the plugin's name, like any registration failure
            culprit = host.plugins.get(exc.plugin or "")
            warning = f"explainers not registered: {exc}"
            if culprit is not None and warning not in culprit.warnings:
                culprit.warnings.append(warning)
        rows = [p.to_dict() for p in host.plugins.values()]
        if json_out:
            echo_json(rows)
            return
        for p in rows:
            head = f"{p['name']} {p['version'] or ''}".strip() + f"  ({p['module']})"
            typer.echo(head)
            for kind, names in p["registered"].items():
                typer.echo(f"    {kind}: {', '.join(names)}")
            if p["error"]:
                typer.echo(f"    ERROR: {p['error']}")
            for warning in p["warnings"]:
                typer.echo(f"    WARNING: {warning}")
