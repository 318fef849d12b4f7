"""The plugin host: registration checks, isolation of failures, typed accessors, hooks."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pytest

import aikit
from aikit import Backend, PredictCall, hookimpl
from aikit.errors import UnknownNameError
from aikit.plugins import PluginHost
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
