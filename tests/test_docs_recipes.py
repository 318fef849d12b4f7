"""The plugin recipes of docs/how-to/write-a-plugin.md (examples/recipes/*.py), each registered
through its hook in a fresh plugin host and checked for its effect on tiny real models."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import aikit
from aikit.testing import MockBackend, fresh_host

RECIPES = Path(__file__).resolve().parents[1] / "examples" / "recipes"


@pytest.fixture(scope="module")
def recipes() -> Iterator[Callable[[str], ModuleType]]:
    sys.path.insert(0, str(RECIPES))
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(str(RECIPES))


def test_metric_recipe_registers_word_f1(recipes: Callable[[str], ModuleType]) -> None:
    """aikit_register_metrics: the registered function is found by name and scores correctly."""
    metric_plugin = recipes("metric_plugin")
    with fresh_host(metric_plugin) as host:
        word_f1 = aikit.get_metric("word_f1")
        assert host.owners[("metrics", "word_f1")] == "metric_plugin"
    assert word_f1(["Paris is the capital"], ["paris is the capital"]) == 1.0
    assert word_f1(["the cat"], ["a dog"]) == 0.0
    assert word_f1(["the big cat"], ["the cat"]) == pytest.approx(0.8)  # P=2/3, R=1
    with pytest.raises(aikit.InputError, match="equally many"):
        word_f1(["a"], [])


def test_strategy_recipe_prunes_a_copy_of_the_torch_module(
    recipes: Callable[[str], ModuleType], tiny_model_dir: Callable[[str], Path]
) -> None:
    """aikit_register_strategies: the strategy is found by name and prunes a copy, not the original."""
    strategy_plugin = recipes("strategy_plugin")
    with fresh_host(strategy_plugin):
        strategy_cls = aikit.get_strategy("recipe-magnitude-prune")
        model = aikit.Model.load(tiny_model_dir("bert-embedding"))
        config = strategy_plugin.MagnitudePrune(amount=0.5)
        pruned = strategy_cls().apply(model.backend, config, aikit.CompressionContext(task=model.task))
    before = strategy_plugin.linear_sparsity(model.backend.torch_module())
    after = strategy_plugin.linear_sparsity(pruned.torch_module())
    assert before < 0.01  # the original is untouched
    assert 0.49 <= after <= 0.55
    with pytest.raises(aikit.ConfigError, match="amount must be in"):
        strategy_plugin.MagnitudePrune(amount=1.5)


def test_strategy_recipe_through_model_compress(
    recipes: Callable[[str], ModuleType], tiny_model_dir: Callable[[str], Path]
) -> None:
    strategy_plugin = recipes("strategy_plugin")
    with fresh_host(strategy_plugin):
        model = aikit.Model.load(tiny_model_dir("bert-embedding"))
        pruned = model.compress(strategy_plugin.MagnitudePrune(amount=0.3), measure_speed=False)
        assert strategy_plugin.linear_sparsity(pruned.backend.torch_module()) >= 0.29
        assert pruned.transformations[-1]["strategy"] == "recipe-magnitude-prune"
        vector = pruned.predict("the cat is happy").vector
    assert np.isfinite(vector).all()


def test_task_recipe_embeds_with_the_first_token(
    recipes: Callable[[str], ModuleType], tiny_model_dir: Callable[[str], Path]
) -> None:
    """aikit_register_tasks: Model.load(task="cls-embedding") builds the model with the recipe task."""
    task_plugin = recipes("task_plugin")
    with fresh_host(task_plugin):
        cls_model = aikit.Model.load(tiny_model_dir("bert-embedding"), task="cls-embedding")
        mean_model = aikit.Model.load(tiny_model_dir("bert-embedding"), task="feature-extraction")
        texts = ["the cat is happy", "a dog in paris", "hello world"]
        results = cls_model.predict(texts)
        single = cls_model.predict("hello world")
        mean = mean_model.embed(texts)
        with pytest.raises(aikit.InputError, match="input 1"):
            cls_model.predict(["fine", 3])
    vectors = np.stack([r.vector for r in results])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(single.vector, vectors[2], atol=1e-5)  # batching does not change results
    assert not np.allclose(vectors, mean, atol=1e-3)  # a different pooling than the built-in task


class _MockBackends:
    @aikit.hookimpl
    def aikit_register_backends(self, register: Callable[[type[aikit.Backend]], None]) -> None:
        register(MockBackend)


def test_policy_recipe_steers_auto_for_generation_only(
    recipes: Callable[[str], ModuleType], tiny_model_dir: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """aikit_choose_backend (and aikit_register_backends for the mock): the policy decides only when asked to."""
    policy_plugin = recipes("policy_plugin")
    # Keep the candidate list to torch and the mock: an ONNX export is not what this recipe is about.
    monkeypatch.setenv("AIKIT_BLOCK_PLUGINS", "onnxruntime,cuda")
    with fresh_host(policy_plugin, _MockBackends()):
        assert aikit.Model.load(tiny_model_dir("llama-causal-lm")).backend_name != "mock"  # no opinion
        monkeypatch.setenv("AIKIT_RECIPE_AVOID_BACKEND", "torch")
        chat = aikit.Model.load(tiny_model_dir("llama-causal-lm"))
        embedder = aikit.Model.load(tiny_model_dir("bert-embedding"))
    assert chat.backend_name == "mock"  # torch avoided for a generative task
    assert embedder.backend_name == "torch"  # other tasks unaffected


def test_command_recipe_adds_a_cli_command(recipes: Callable[[str], ModuleType]) -> None:
    """aikit_register_commands: the hook adds a working ``candidates`` command to a Typer app."""
    import typer
    from typer.testing import CliRunner

    policy_plugin = recipes("policy_plugin")
    cli = typer.Typer()
    cli.command()(lambda: None)  # a second command, so typer keeps subcommand names
    with fresh_host(policy_plugin, _MockBackends()) as host:
        host.pm.hook.aikit_register_commands(cli=cli)
        result = CliRunner().invoke(cli, ["candidates", "--generative"])
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.output.strip().splitlines()]
    names = [row[0] for row in rows]
    assert "torch" in names and names[-1] == "mock"  # ordered by priority; MockBackend's is -100
    assert all(len(row) == 3 and row[2] for row in rows)  # name, priority, availability


def test_loader_recipe_rejects_unknown_names_clearly(recipes: Callable[[str], ModuleType]) -> None:
    """aikit_register_loaders: the loader is asked first for its prefix and explains a bad name."""
    loader_plugin = recipes("loader_plugin")
    with fresh_host(loader_plugin) as host:
        assert aikit.get_loader("packaged") is loader_plugin.PackagedModelLoader
        assert host.owners[("loaders", "packaged")] == "loader_plugin"
        with pytest.raises(aikit.UnknownNameError, match="'minilm'"):
            aikit.Model.load("packaged:bert-huge")
    assert not loader_plugin.PackagedModelLoader().detects(Path("packaged:minilm"))


@pytest.mark.slow
def test_loader_recipe_loads_a_packaged_model(recipes: Callable[[str], ModuleType], minilm: aikit.Model) -> None:
    loader_plugin = recipes("loader_plugin")
    texts = ["the loader found the model", "by its name"]
    with fresh_host(loader_plugin):
        model = aikit.Model.load("packaged:minilm", task="feature-extraction")
        np.testing.assert_allclose(model.embed(texts), minilm.embed(texts), atol=1e-6)
