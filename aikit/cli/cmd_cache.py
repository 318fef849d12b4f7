"""``aikit cache``: what aikit's cache holds, and removing it."""

from __future__ import annotations

import typer

from aikit.cli._common import echo_json


def register(app: typer.Typer) -> None:
    @app.command()
    def cache(
        clear: bool = typer.Option(False, "--clear", help="Remove every entry."),
        prune: bool = typer.Option(
            False, "--prune", help="Remove least recently used entries until the cache fits its bound."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    ) -> None:
        """The cache folder, its entries (exported ONNX graphs, GGUF conversions), their size and its bound.

        The bound is $AIKIT_CACHE_MAX_GB gigabytes (default 20, 'unlimited' for none); it applies each
        time an entry is written, removing the least recently used ones first."""
        import math

        from aikit import cache as store

        limit = store.cache_limit()
        removed = store.clear() if clear else store.prune(limit=limit) if prune else []
        entries = store.cache_entries()
        total = sum(e.size for e in entries)
        data = {
            "folder": str(store.cache_dir()),
            "limit_gb": None if math.isinf(limit) else limit / 1e9,
            "total_gb": total / 1e9,
            "removed": [{"path": str(e.path), "kind": e.kind, "gb": e.size / 1e9} for e in removed],
            "entries": [
                {"path": str(e.path), "kind": e.kind, "gb": e.size / 1e9, "last_used": e.last_used}
                for e in reversed(entries)
            ],
        }
        if json_out:
            echo_json(data)
            return
        bound = "unlimited" if math.isinf(limit) else f"{limit / 1e9:.1f} GB"
        typer.echo(f"cache: {data['folder']}")
        if removed:
            typer.echo(f"removed {len(removed)} entries, {sum(e.size for e in removed) / 1e9:.2f} GB")
        typer.echo(f"{len(entries)} entries, {total / 1e9:.2f} GB of {bound} ({store.LIMIT_VARIABLE})")
        for kind in store.ENTRY_KINDS:
            mine = [e for e in entries if e.kind == kind]
            if mine:
                typer.echo(f"  {kind}/: {len(mine)} entries, {sum(e.size for e in mine) / 1e9:.2f} GB")
