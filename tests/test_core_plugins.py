"""The plugin host: registration checks, isolation of failures, typed accessors, hooks."""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator
from typing import Any

import pytest
import typer

import aikit
from aikit import Backend, PredictCall, hookimpl
from aikit.errors import UnknownNameError
from aikit.plugins.host import PluginHost
from aikit.testing import MockBackend, fresh_host


class MockPlugin:
    @hookimpl
    def aikit_register_backends(self, register: Callable[[type[Backend]], None]) -> None:
        register(MockBackend)


def test_builtin_plugins_register_through_entry_points(aikit_host: PluginHost) -> None:
    assert {"torch", "tasks", "formats"} <= set(aikit_host.plugins)
    assert aikit_host.plugins["torch"].registered["backends"] == ["torch"]
    assert aikit_host.plugins["torch"].distribution == "aikit"
    assert "feature-extraction" in aikit_host.tasks
    assert "huggingface" in aikit_host.loaders


def test_unknown_names_list_the_choices(aikit_host: PluginHost) -> None:
    with pytest.raises(UnknownNameError, match="unknown backend 'nope'; choose one of: .*'torch'"):
        aikit.get_backend("nope")
    with pytest.raises(UnknownNameError, match="feature-extraction"):
        aikit.get_task("translate-klingon")
    assert aikit.get_task("embeddings").name == "feature-extraction"  # aliases resolve


def test_registering_a_non_backend_is_reported_not_fatal() -> None:
    class Bad:
        @hookimpl
        def aikit_register_backends(self, register: Callable[[Any], None]) -> None:
            register(object)

    with fresh_host(Bad()) as host:
        info = host.plugins["test-plugin-0"]
        assert info.error is not None and "not a subclass of aikit.Backend" in info.error
        assert "torch" in host.backends  # the others keep working


def test_duplicate_names_raise_instead_of_overwriting() -> None:
    class Dup:
        @hookimpl
        def aikit_register_backends(self, register: Callable[[type[Backend]], None]) -> None:
            class Torch2(MockBackend):
                name = "torch"

            register(Torch2)

    with fresh_host(Dup()) as host:
        assert "already registered" in (host.plugins["test-plugin-0"].error or "")
        assert host.backends["torch"].__module__.startswith("aikit_torch")


def test_failed_registration_is_rolled_back() -> None:
    class Half:
        @hookimpl
        def aikit_register_backends(self, register: Callable[[type[Backend]], None]) -> None:
            register(MockBackend)
            raise RuntimeError("boom after registering")

    with fresh_host(Half()) as host:
        assert "mock" not in host.backends
        assert "boom after registering" in (host.plugins["test-plugin-0"].error or "")


def test_strict_mode_raises_plugin_load_error() -> None:
    class Bad:
        @hookimpl
        def aikit_register_tasks(self, register: Callable[[Any], None]) -> None:
            raise ValueError("cannot")

    host = PluginHost(autoload=False, strict=True)
    with pytest.raises(aikit.PluginLoadError, match="cannot"):
        host.add_plugin(Bad(), name="bad")


def test_misspelled_hook_is_reported() -> None:
    class Typo:
        @hookimpl
        def aikit_register_backend(self, register: Any) -> None:  # missing "s"
            raise AssertionError("never called")

    with fresh_host(Typo()) as host:
        error = host.plugins["test-plugin-0"].error or ""
        assert "aikit_register_backend" in error


def test_registration_is_recorded_per_plugin() -> None:
    with fresh_host(MockPlugin()) as host:
        assert host.plugins["test-plugin-0"].registered == {"backends": ["mock"]}
        assert host.owners[("backends", "mock")] == "test-plugin-0"
        host.remove_plugin("test-plugin-0")
        assert "mock" not in host.backends


def test_choose_backend_hook_decides_auto(tiny_model_dir: Callable[[str], Any]) -> None:
    class Chooser:
        @hookimpl
        def aikit_choose_backend(self, parts: Any, task: Any, candidates: list[str]) -> str | None:
            assert candidates[0] == "torch"  # highest priority first
            return "mock"

    with fresh_host(MockPlugin(), Chooser()):
        model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"))
        assert model.backend_name == "mock"


def test_predict_wrapper_middleware_can_rewrite_inputs_and_results(tiny_model_dir: Callable[[str], Any]) -> None:
    seen: list[list[Any]] = []

    class Upper:
        @hookimpl(wrapper=True)
        def aikit_predict(self, call: PredictCall) -> Generator[None, list[Any], list[Any]]:
            call.inputs = [s.replace("secret", "[x]") for s in call.inputs]
            seen.append(list(call.inputs))
            results = yield
            return [*results]

    with fresh_host(Upper()):
        model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"))
        out = model.predict(["a secret movie", "good"])
        assert seen == [["a [x] movie", "good"]]
        assert len(out) == 2 and out[0] == model.predict("a [x] movie")


def test_predict_errors_in_wrappers_propagate(tiny_model_dir: Callable[[str], Any]) -> None:
    class Broken:
        @hookimpl(wrapper=True)
        def aikit_predict(self, call: PredictCall) -> Generator[None, list[Any], list[Any]]:
            raise RuntimeError("middleware exploded")
            yield  # pragma: no cover

    with fresh_host(Broken()):
        model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"))
        with pytest.raises(RuntimeError, match="middleware exploded"):
            model.predict("good")


def test_plugins_cli_lists_versions_registrations_and_errors() -> None:
    from typer.testing import CliRunner

    from aikit.cli import app

    class Bad:
        @hookimpl
        def aikit_register_tasks(self, register: Any) -> None:
            raise ImportError("missing thing")

    with fresh_host(Bad()):
        result = CliRunner().invoke(app, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "torch 0.1.0" in result.output and "backends: torch" in result.output
    assert "ERROR: registration failed: ImportError: missing thing" in result.output


# ------------------------------------------------------------------ hooks run through pluggy's call loop


def test_registration_hooks_run_through_pluggys_call_loop() -> None:
    """Call monitoring (and so ``pm.trace``) sees each registration, and a plugin's registration hook
    written as a ``wrapper`` runs as one (called directly, its generator would register nothing)."""

    def exact(predictions: list[Any], references: list[Any]) -> float:
        return float(predictions == references)

    class Wrapped:
        @hookimpl(wrapper=True)
        def aikit_register_metrics(self, register: Callable[..., None]) -> Generator[None, Any, Any]:
            register("wrapped-exact", exact)
            return (yield)

    seen: list[tuple[str, list[str]]] = []
    host = PluginHost(autoload=False)
    undo = host.pm.add_hookcall_monitoring(
        lambda hook, impls, kwargs: seen.append((hook, [i.plugin_name for i in impls])), lambda *a: None
    )
    try:
        host.add_plugin(MockPlugin(), name="mock-plugin")
        host.add_plugin(Wrapped(), name="wrapped")
    finally:
        undo()
    assert ("aikit_register_backends", ["mock-plugin"]) in seen  # one plugin per call: failures stay its own
    assert ("aikit_register_metrics", ["wrapped"]) in seen
    assert host.metrics["wrapped-exact"] is exact and host.plugins["wrapped"].registered == {
        "metrics": ["wrapped-exact"]
    }


def _core_cli() -> typer.Typer:
    """A CLI holding aikit's own ``info`` and ``plugins`` commands, apart from the shared ``aikit.cli.app``."""
    from aikit.cli import cmd_info

    cli = typer.Typer()
    cmd_info.register(cli)
    return cli


class CommandPlugin:
    @hookimpl
    def aikit_register_commands(self, cli: typer.Typer) -> None:
        @cli.command("hello")
        def hello() -> None:
            print("hello from a plugin")


class InfoThief:
    @hookimpl
    def aikit_register_backends(self, register: Callable[[type[Backend]], None]) -> None:
        register(MockBackend)

    @hookimpl
    def aikit_register_commands(self, cli: typer.Typer) -> None:
        cli.command("extra")(lambda: None)

        @cli.command("info")
        def info() -> None:
            print("not aikit's info")


def test_a_plugin_command_is_registered_and_owned() -> None:
    from aikit.cli import _command_names

    cli = _core_cli()
    with fresh_host(CommandPlugin(), autoload=False) as host:
        host.add_commands(cli, _command_names)
        host.add_commands(cli, _command_names)  # once per CLI: nothing added twice
        assert host.plugins["test-plugin-0"].registered == {"commands": ["hello"]}
        assert host.owners[("commands", "hello")] == "test-plugin-0" and host.owners[("commands", "info")] == "aikit"
    assert [_command_names(c) for c in cli.registered_commands] == [["info"], ["plugins"], ["hello"]]


def test_a_plugin_command_cannot_replace_an_aikit_command() -> None:
    """The issue: a plugin registering ``info`` silently replaced ``aikit info``. Now it is refused,
    the plugin is named, every command it added is withdrawn, and its backend keeps working."""
    from typer.testing import CliRunner

    from aikit.cli import _command_names

    cli = _core_cli()
    with fresh_host(InfoThief(), autoload=False) as host:
        host.add_commands(cli, _command_names)
        info = host.plugins["test-plugin-0"]
        assert info.error is None and info.registered == {"backends": ["mock"]}
        assert info.warnings == [
            "commands not added: RegistrationError: plugin 'test-plugin-0' registered command 'info', "
            "which aikit itself provides"
        ]
        assert "mock" in host.backends and ("commands", "extra") not in host.owners
        result = CliRunner().invoke(cli, ["info", "--help"])
    assert result.exit_code == 0 and "Versions, hardware, plugins" in result.output
    assert [_command_names(c) for c in cli.registered_commands] == [["info"], ["plugins"]]


def test_two_plugins_claiming_one_command_name_the_first_keeps_it() -> None:
    from aikit.cli import _command_names

    cli = _core_cli()
    with fresh_host(CommandPlugin(), CommandPlugin(), autoload=False) as host:
        host.add_commands(cli, _command_names)
        assert host.owners[("commands", "hello")] == "test-plugin-0"
        assert "which plugin 'test-plugin-0' already registered" in host.plugins["test-plugin-1"].warnings[0]


def test_strict_mode_raises_for_a_refused_command() -> None:
    from aikit.cli import _command_names

    with (
        fresh_host(InfoThief(), autoload=False, strict=True) as host,
        pytest.raises(aikit.PluginLoadError, match="registered command 'info'"),
    ):
        host.add_commands(_core_cli(), _command_names)


def test_aikit_runs_a_plugin_command_and_plugins_lists_everything_a_plugin_added(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from aikit.cli import app, main
    from aikit.measure.explain import Explainer

    class Everything(CommandPlugin):
        @hookimpl
        def aikit_register_backends(self, register: Callable[[type[Backend]], None]) -> None:
            register(MockBackend)

        @hookimpl
        def aikit_register_explainers(self, register: Callable[[type[Any]], None]) -> None:
            register(type("Everywhere", (Explainer,), {"name": "everything-test", "attribute": lambda *a: None}))

        @hookimpl(wrapper=True)
        def aikit_predict(self, call: PredictCall) -> Generator[None, list[Any], list[Any]]:
            return (yield)

        @hookimpl
        def aikit_choose_backend(self, parts: Any, task: Any, candidates: list[str]) -> str | None:
            return None

    saved = list(app.registered_commands)
    try:
        with fresh_host(Everything(), autoload=False):
            monkeypatch.setattr(sys, "argv", ["aikit", "hello"])
            with pytest.raises(SystemExit) as done:
                main()  # "hello" is not aikit's: the plugins load first
            assert done.value.code == 0 and "hello from a plugin" in capsys.readouterr().out
            monkeypatch.setattr(sys, "argv", ["aikit", "plugins", "--json"])
            with pytest.raises(SystemExit):
                main()
            rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    finally:
        app.registered_commands[:] = saved
    assert rows["test-plugin-0"]["registered"] == {
        "backends": ["mock"],
        "middleware": ["aikit_predict"],
        "hooks": ["aikit_choose_backend"],
        "commands": ["hello"],
        "explainers": ["everything-test"],
    }
    assert rows["aikit.core"]["registered"] == {"hooks": ["aikit_predict"]}
