"""Every hook a plugin can implement. Import ``hookimpl`` from ``aikit`` to implement one.

Registration hooks receive a ``register`` callback instead of returning values; the core checks
each registered object (right base class, no duplicate names) and records which plugin
registered it. Hooks grow by gaining arguments (implementations may accept a subset), never by
being renamed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from aikit.contracts.backend import Backend
    from aikit.contracts.candidate import Candidate
    from aikit.contracts.loader import Loader
    from aikit.contracts.options import BackendOptions
    from aikit.contracts.parts import ModelParts
    from aikit.contracts.predict_call import PredictCall
    from aikit.contracts.strategy import Strategy
    from aikit.contracts.task import Task
    from aikit.model.model import Model

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("aikit")
hookimpl = pluggy.HookimplMarker("aikit")


@hookspec
def aikit_register_backends(register: Callable[[type[Backend]], None]) -> None:
    """Register backend classes (subclasses of ``aikit.Backend``).

    Called once per plugin when plugins are loaded. Call ``register(cls)`` for each backend;
    a name that is already registered raises ``RegistrationError``.
    """


@hookspec
def aikit_register_tasks(register: Callable[[type[Task]], None]) -> None:
    """Register task classes (subclasses of ``aikit.Task``).

    Called once per plugin when plugins are loaded. Call ``register(cls)`` for each task.
    """


@hookspec
def aikit_register_strategies(register: Callable[[type[Strategy]], None]) -> None:
    """Register compression strategy classes (subclasses of ``aikit.Strategy``).

    Called once per plugin when plugins are loaded. Registering a strategy also allow-lists its
    ``config_class`` for deserialisation from manifests.
    """


@hookspec
def aikit_register_loaders(register: Callable[[type[Loader]], None]) -> None:
    """Register model loaders (subclasses of ``aikit.Loader``): the formats ``Model.load`` reads.

    Called once per plugin when plugins are loaded.
    """


@hookspec
def aikit_register_metrics(register: Callable[..., None]) -> None:
    """Register evaluation metrics: ``register(name, function)``.

    Called once per plugin when plugins are loaded. ``function(predictions, references)`` returns
    a float or a dict of floats. See ``aikit.measure.evaluate``.
    """


@hookspec
def aikit_register_dataset_formats(register: Callable[..., None]) -> None:
    """Register dataset file formats for ``aikit.measure.evaluate``: ``register(name, reader)``.

    Called once per plugin when plugins are loaded. ``name`` is a file suffix (``"jsonl"`` reads
    ``data.jsonl``) or a prefix (``"hf"`` reads ``"hf:imdb"``). ``reader(location, *, split=None)``
    returns the records as a list of dicts and raises ``InputError`` naming the file and line of a
    bad record. A name that is already registered raises ``RegistrationError``.
    """


@hookspec
def aikit_register_commands(cli: Any) -> None:
    """Add commands to the ``aikit`` command line. ``cli`` is the root ``typer.Typer`` application.

    Called once per plugin, when the CLI runs a command that is not aikit's own (``aikit --help``
    loads no plugin) and by ``aikit plugins``. A name that aikit or an earlier plugin already has is
    refused: every command this plugin added is withdrawn and a warning names it.
    """


@hookspec(firstresult=True)
def aikit_choose_backend(
    parts: ModelParts, task: type[Task], candidates: list[str], options: BackendOptions
) -> str | None:
    """Choose the backend for ``backend="auto"``.

    Called by ``Model.load`` and ``Model.to("auto")``. ``candidates`` lists the registered backends that
    are available here and accept the parts' payload, highest priority first; ``options`` holds the
    caller's device, threads, dtype and backend options. Return one of them,
    or None to pass. Stops at first non-None result; when every plugin passes, the first
    candidate is used.
    """


@hookspec(firstresult=True)
def aikit_predict(call: PredictCall) -> list[Any] | None:
    """Run one ``Model.predict`` or ``Model.stream`` call; middleware wraps it.

    Called once per ``predict`` and once per ``stream`` with a ``PredictCall`` holding ``model``,
    ``inputs`` (a list you may replace), and ``options``. The core implements it (batching,
    backend); plugins add ``@hookimpl(wrapper=True)`` implementations that may change
    ``call.inputs`` before ``yield`` and inspect or replace the results after it (logging,
    metrics, input redaction). A streamed call (``call.streaming``) has one input and sends text
    to ``call.on_text`` as it is decoded, before the results come back; wrap ``call.on_text`` to
    see or change those pieces. Must return one result per input. Stops at first non-None result.
    """


@hookspec
def aikit_optimize_candidates(model: Model, objective: str, propose: Callable[[Candidate], None]) -> None:
    """Propose variants for ``Model.optimize`` to try: call ``propose(aikit.Candidate(...))`` for each.

    Called once per ``optimize`` run, on every plugin. ``model`` is the model as loaded (look at
    ``model.task``, ``model.backend`` and ``model.parts`` to propose only what fits it);
    ``objective`` is ``"throughput"``, ``"latency"``, ``"size"`` or ``"memory"``. A candidate names
    a registered backend and a chain of registered strategies (with the options worth trying on
    this machine); the search converts, compresses, measures quality on held-out inputs and times
    it, so a proposal costs nothing unless it is tried. Candidates that cannot run here (backend
    unavailable, strategy not for that backend) are listed in the report as rejected, not fatal.
    """


@hookspec
def aikit_register_explainers(register: Callable[[type[Any]], None]) -> None:
    """Register attribution methods for ``Model.explain``: subclasses of ``aikit.measure.explain.Explainer``.

    Called once per plugin host, the first time an explainer is looked up. Call ``register(cls)``
    for each; a class that is not an ``Explainer`` or a name already registered raises
    ``RegistrationError``.
    """
