"""The plugin host: loads plugins one at a time, collects what they register, reports failures.

Users never touch ``pm.hook``; they call the typed accessors at the bottom of this module
(``get_backend``, ``get_task``, ...). Built-in plugins are entry points in the ``aikit`` group,
exactly like third-party ones.

Environment switches:

- ``AIKIT_DISABLE_PLUGIN_AUTOLOAD=1``: do not load entry points, except those named in
  ``AIKIT_LOAD_PLUGINS``.
- ``AIKIT_LOAD_PLUGINS=a,b``: entry-point names or importable module paths to load; with autoload
  on, module paths are loaded in addition to the entry points.
- ``AIKIT_BLOCK_PLUGINS=a,b``: entry-point names never to load.
- ``AIKIT_STRICT_PLUGINS=1``: a plugin that fails to load raises instead of being reported.

Every hook implementation runs through pluggy's call loop (``pm.hook.<name>(...)``), so pluggy's
tracing, call monitoring and ``wrapper``/``hookwrapper`` semantics hold. Registration hooks are
called one plugin at a time (``PluginHost.call_plugin``: the hook's caller restricted to that
plugin), so that what a broken plugin registered is rolled back and reported under its name while
the others keep working.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, TypeVar

import pluggy

import aikit.contracts.hookspecs as hookspecs
from aikit.contracts.backend import Backend
from aikit.contracts.loader import Loader
from aikit.contracts.parts import ModelParts
from aikit.contracts.strategy import CompressionConfig, Strategy
from aikit.contracts.task import Task
from aikit.errors import ConfigError, PluginLoadError, RegistrationError, UnknownNameError

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginHost",
    "PluginInfo",
    "get_backend",
    "get_host",
    "get_loader",
    "get_metric",
    "get_strategy",
    "get_task",
    "reset_host",
    "resolve_task",
    "strategies_for",
]

ENTRY_POINT_GROUP = "aikit"
logger = logging.getLogger("aikit.plugins")

_KINDS = ("backends", "tasks", "strategies", "loaders", "metrics", "dataset_formats")
# Hooks that are not registration hooks: ``aikit plugins`` lists the plugins implementing them.
_MIDDLEWARE_HOOKS = ("aikit_predict",)
_BASES: dict[str, type] = {"backends": Backend, "tasks": Task, "strategies": Strategy, "loaders": Loader}


def _env_list(name: str) -> list[str]:
    return [x.strip() for x in os.environ.get(name, "").split(",") if x.strip()]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class PluginInfo:
    """What ``aikit plugins`` shows for one plugin."""

    name: str
    module: str
    version: str | None = None
    distribution: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "version": self.version,
            "distribution": self.distribution,
            "registered": {k: list(v) for k, v in self.registered.items() if v},
            "error": self.error,
            "warnings": list(self.warnings),
        }


_T = TypeVar("_T")


def _singular(kind: str) -> str:
    """``"strategies"`` -> ``"strategy"``, ``"dataset_formats"`` -> ``"dataset_format"``."""
    return "strategy" if kind == "strategies" else kind[:-1]


class PluginHost:
    """One plugin manager plus the registries filled from it.

    ``aikit`` keeps a process-wide host (``get_host()``); tests build fresh ones
    (``aikit.testing.fresh_host``) so that fake plugins never leak between tests.
    """

    def __init__(self, *, autoload: bool | None = None, strict: bool | None = None) -> None:
        self.pm = pluggy.PluginManager("aikit")
        self.pm.add_hookspecs(hookspecs)
        self.autoload = (not _env_flag("AIKIT_DISABLE_PLUGIN_AUTOLOAD")) if autoload is None else autoload
        self.strict = _env_flag("AIKIT_STRICT_PLUGINS") if strict is None else strict
        self.plugins: dict[str, PluginInfo] = {}
        self.backends: dict[str, type[Backend]] = {}
        self.tasks: dict[str, type[Task]] = {}
        self.task_aliases: dict[str, str] = {}
        self.strategies: dict[str, type[Strategy]] = {}
        self.loaders: dict[str, type[Loader]] = {}
        self.metrics: dict[str, Callable[..., Any]] = {}
        self.dataset_formats: dict[str, Callable[..., Any]] = {}
        self.commands: dict[str, Any] = {}  # CLI command name -> what the plugin added (typer's info object)
        self.owners: dict[tuple[str, str], str] = {}
        self._command_clis: list[Any] = []  # the CLIs add_commands already filled
        self._lock = threading.RLock()
        self._loaded = False

    # ----------------------------------------------------------------- loading
    def ensure_loaded(self) -> None:
        """Load plugins once (thread-safe); later calls return immediately."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            import aikit.plugins._core as _core_plugin

            self.add_plugin(_core_plugin, name="aikit.core")
            self._load_entry_points()
            entry_point_names = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
            for ref in _env_list("AIKIT_LOAD_PLUGINS"):
                if ref not in entry_point_names and ref not in self.plugins:
                    self._load_module_path(ref)
            self._loaded = True

    def _load_entry_points(self) -> None:
        wanted = set(_env_list("AIKIT_LOAD_PLUGINS"))
        blocked = set(_env_list("AIKIT_BLOCK_PLUGINS"))
        seen: set[str] = set()
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in seen or ep.name in blocked:
                continue  # the same distribution can be visible twice on sys.path
            seen.add(ep.name)
            if not self.autoload and ep.name not in wanted:
                continue
            self._load_entry_point(ep)

    def _load_entry_point(self, ep: EntryPoint) -> None:
        dist = getattr(ep, "dist", None)
        info = PluginInfo(
            name=ep.name,
            module=ep.value,
            version=getattr(dist, "version", None),
            distribution=getattr(dist, "name", None),
        )
        try:
            plugin = ep.load()
        except Exception as exc:  # any import-time failure must stay contained
            self._record_failure(info, f"import failed: {type(exc).__name__}: {exc}", exc)
            return
        self.add_plugin(plugin, name=ep.name, info=info)

    def _load_module_path(self, ref: str) -> None:
        info = PluginInfo(name=ref, module=ref)
        try:
            plugin = importlib.import_module(ref)
        except Exception as exc:
            self._record_failure(info, f"import failed: {type(exc).__name__}: {exc}", exc)
            return
        info.version = getattr(plugin, "__version__", None)
        self.add_plugin(plugin, name=ref, info=info)

    def add_plugin(self, plugin: object, *, name: str, info: PluginInfo | None = None) -> PluginInfo:
        """Register one plugin object (a module or instance with ``@hookimpl`` functions).

        Its registration hooks are called immediately. Failures are recorded on the returned
        ``PluginInfo`` (and raised as ``PluginLoadError`` in strict mode); nothing it half-registered
        is kept.
        """
        info = info or PluginInfo(
            name=name,
            module=getattr(plugin, "__name__", type(plugin).__name__),
            version=getattr(plugin, "__version__", None),
        )
        with self._lock:
            try:
                self.pm.register(plugin, name=name)
                self.pm.check_pending()
            except Exception as exc:  # pluggy.PluginValidationError, ValueError for duplicates
                if self.pm.is_registered(plugin):
                    self.pm.unregister(plugin)
                self._record_failure(info, f"invalid hook implementation: {exc}", exc)
                return info
            snapshot = self._snapshot()
            try:
                self._call_register_hooks(plugin, name, info)
            except Exception as exc:
                self._restore(snapshot)
                info.registered = {}
                self.pm.unregister(plugin)
                self._record_failure(info, f"registration failed: {type(exc).__name__}: {exc}", exc)
                return info
            self.plugins[name] = info
        return info

    def remove_plugin(self, name: str) -> None:
        """Unregister a plugin and everything it registered."""
        with self._lock:
            plugin = self.pm.get_plugin(name)
            if plugin is not None:
                self.pm.unregister(plugin)
            for (kind, item), owner in list(self.owners.items()):
                if owner == name:
                    getattr(self, kind).pop(item, None)
                    del self.owners[(kind, item)]
                    if kind == "tasks":
                        for alias, target in list(self.task_aliases.items()):
                            if target == item:
                                del self.task_aliases[alias]
            self.plugins.pop(name, None)

    def _record_failure(self, info: PluginInfo, message: str, exc: BaseException) -> None:
        info.error = message
        self.plugins[info.name] = info
        logger.warning("aikit plugin %r was not loaded: %s", info.name, message)
        if self.strict:
            raise PluginLoadError(f"plugin {info.name!r}: {message}", plugin=info.name) from exc

    def _snapshot(self) -> tuple[dict[str, dict[str, Any]], dict[str, str], dict[tuple[str, str], str]]:
        tables = {k: dict(getattr(self, k)) for k in (*_KINDS, "commands")}
        return (tables, dict(self.task_aliases), dict(self.owners))

    def _restore(self, snap: tuple[dict[str, dict[str, Any]], dict[str, str], dict[tuple[str, str], str]]) -> None:
        for k, v in snap[0].items():
            setattr(self, k, v)
        self.task_aliases, self.owners = snap[1], snap[2]

    def implements(self, plugin_name: str, hook: str) -> bool:
        """Whether the plugin registered as ``plugin_name`` implements ``hook``."""
        plugin = self.pm.get_plugin(plugin_name)
        return plugin is not None and any(i.plugin is plugin for i in getattr(self.pm.hook, hook).get_hookimpls())

    def call_plugin(self, hook: str, plugin_name: str, **kwargs: Any) -> Any:
        """Call ``hook`` on one plugin only, through pluggy's call loop; returns what the hook returns.

        The caller is ``pm.hook.<hook>`` restricted to that plugin (``pm.subset_hook_caller``), so
        tracing and call monitoring see the call and the plugin's own ``wrapper`` implementations
        wrap it; the other plugins are not called. Exceptions propagate: the callers decide how a
        broken plugin is reported.
        """
        plugin = self.pm.get_plugin(plugin_name)
        if plugin is None:
            raise KeyError(f"no plugin registered as {plugin_name!r}")
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        return self.pm.subset_hook_caller(hook, remove_plugins=others)(**kwargs)

    def _call_register_hooks(self, plugin: object, name: str, info: PluginInfo) -> None:
        for kind in _KINDS:
            if self.implements(name, f"aikit_register_{kind}"):
                self.call_plugin(f"aikit_register_{kind}", name, register=self._registrar(kind, name, info))
        # The other hooks it implements, for ``aikit plugins``; commands and explainers are recorded
        # when they are collected (``add_commands``, ``aikit.measure.explain.registered_explainers``).
        for caller in sorted(self.pm.get_hookcallers(plugin) or [], key=lambda c: c.name):
            if caller.name.startswith("aikit_register_"):
                continue
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin:
                    middleware = caller.name in _MIDDLEWARE_HOOKS and (impl.wrapper or impl.hookwrapper)
                    info.registered.setdefault("middleware" if middleware else "hooks", []).append(caller.name)

    def _claim(self, kind: str, item_name: str, plugin_name: str) -> None:
        """Refuse ``item_name`` when another plugin (or aikit itself) already registered it as a ``kind``."""
        if item_name in getattr(self, kind):
            owner = self.owners.get((kind, item_name), "?")
            raise RegistrationError(
                f"plugin {plugin_name!r} registered {_singular(kind)} {item_name!r}, "
                f"which {'aikit itself provides' if owner == 'aikit' else f'plugin {owner!r} already registered'}",
                plugin=plugin_name,
            )

    def _record(self, kind: str, item_name: str, value: Any, plugin_name: str, info: PluginInfo | None) -> None:
        getattr(self, kind)[item_name] = value
        self.owners[(kind, item_name)] = plugin_name
        if info is not None:
            info.registered.setdefault(kind, []).append(item_name)

    def add_commands(self, cli: Any, command_names: Callable[[Any], list[str]]) -> None:
        """Let each plugin add commands to ``cli`` through ``aikit_register_commands``, checked like
        every other registration: a name that aikit or an earlier plugin already has is refused.

        ``cli`` holds its commands in the lists ``registered_commands`` and ``registered_groups``
        (a ``typer.Typer``); ``command_names(entry)`` gives the command names one entry adds. What
        ``cli`` holds before the first call is aikit's own (owner ``"aikit"``). A plugin whose hook
        raises or claims a taken name loses every command it added, and the reason is logged and
        kept in its ``PluginInfo.warnings`` (raised as ``PluginLoadError`` in strict mode); its other
        registrations stay. Calling this again with the same ``cli`` adds nothing twice.
        """
        self.ensure_loaded()
        with self._lock:
            if any(seen is cli for seen in self._command_clis):
                return
            self._command_clis.append(cli)
            for entry in [*cli.registered_commands, *cli.registered_groups]:
                for item in command_names(entry):
                    if ("commands", item) not in self.owners:
                        self._record("commands", item, entry, "aikit", None)
            for name, info in list(self.plugins.items()):
                if info.error is None and self.implements(name, "aikit_register_commands"):
                    self._add_plugin_commands(cli, command_names, name, info)

    def _add_plugin_commands(
        self, cli: Any, command_names: Callable[[Any], list[str]], name: str, info: PluginInfo
    ) -> None:
        lists = (cli.registered_commands, cli.registered_groups)
        before = [list(entries) for entries in lists]
        snapshot = self._snapshot()
        try:
            self.call_plugin("aikit_register_commands", name, cli=cli)
            for entries, old in zip(lists, before, strict=True):
                for entry in entries:
                    if not any(entry is o for o in old):
                        for item in command_names(entry):
                            self._claim("commands", item, name)
                            self._record("commands", item, entry, name, info)
        except Exception as exc:  # one plugin's broken command must not take the CLI down
            for entries, old in zip(lists, before, strict=True):
                entries[:] = old
            self._restore(snapshot)
            info.registered.pop("commands", None)
            message = f"commands not added: {type(exc).__name__}: {exc}"
            info.warnings.append(message)
            logger.warning("aikit plugin %r: %s", name, message)
            if self.strict:
                raise PluginLoadError(f"plugin {name!r}: {message}", plugin=name) from exc

    def _registrar(self, kind: str, plugin_name: str, info: PluginInfo) -> Callable[..., None]:
        def register(obj: Any, function: Callable[..., Any] | None = None) -> None:
            if kind in ("metrics", "dataset_formats"):
                if not isinstance(obj, str) or not callable(function):
                    raise RegistrationError(
                        f"{kind.replace('_', ' ')} are registered as register(name, function)", plugin=plugin_name
                    )
                item_name, value = obj, function
            else:
                base = _BASES[kind]
                if not (isinstance(obj, type) and issubclass(obj, base)):
                    raise RegistrationError(
                        f"plugin {plugin_name!r} registered {obj!r} as one of its {kind}, "
                        f"but it is not a subclass of aikit.{base.__name__}",
                        plugin=plugin_name,
                    )
                declared = getattr(obj, "name", None)
                if not isinstance(declared, str) or not declared:
                    raise RegistrationError(f"{obj.__name__} has no 'name' class attribute", plugin=plugin_name)
                item_name = declared
                value = obj
            self._claim(kind, item_name, plugin_name)
            if kind == "tasks":
                for alias in getattr(value, "aliases", ()):
                    self.task_aliases[alias] = item_name
            if kind == "strategies":
                config_class = getattr(value, "config_class", None)
                if not (isinstance(config_class, type) and issubclass(config_class, CompressionConfig)):
                    raise RegistrationError(
                        f"strategy {item_name!r} needs a config_class subclassing CompressionConfig",
                        plugin=plugin_name,
                    )
            self._record(kind, item_name, value, plugin_name, info)

        return register

    # ----------------------------------------------------------------- lookup
    def _get(self, kind: str, name: str, hint: str = "") -> Any:
        self.ensure_loaded()
        table: dict[str, Any] = getattr(self, kind)
        if kind == "tasks":
            name = self.task_aliases.get(name, name)
        if name not in table:
            choices: Iterable[str] = list(table) + (list(self.task_aliases) if kind == "tasks" else [])
            failed = [p.name for p in self.plugins.values() if p.error]
            if failed:
                hint = (hint + " " if hint else "") + f"(plugins that failed to load: {', '.join(failed)})"
            raise UnknownNameError(_singular(kind), name, choices, hint)
        return table[name]


_host: PluginHost | None = None
_host_lock = threading.Lock()


def get_host() -> PluginHost:
    """The process-wide plugin host, loading plugins on first use."""
    global _host
    if _host is None:
        with _host_lock:
            if _host is None:
                _host = PluginHost()
    _host.ensure_loaded()
    return _host


def reset_host(host: PluginHost | None = None) -> PluginHost | None:
    """Replace the process-wide host (None: rebuild on next use). Returns the previous one."""
    global _host
    with _host_lock:
        previous, _host = _host, host
    return previous


def get_backend(name: str) -> type[Backend]:
    """The backend class registered as ``name``; ``UnknownNameError`` lists the choices."""
    result: type[Backend] = get_host()._get("backends", name)
    return result


def get_task(name: str) -> type[Task]:
    """The task class registered as ``name`` (or one of its aliases)."""
    result: type[Task] = get_host()._get("tasks", name)
    return result


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class registered as ``name`` (e.g. ``"int8-dynamic"``)."""
    result: type[Strategy] = get_host()._get("strategies", name)
    return result


def strategies_for(backend: str) -> list[str]:
    """Names of the registered strategies that run on ``backend``, sorted (for error messages)."""
    return sorted(n for n, s in get_host().strategies.items() if backend in s.backends)


def get_loader(name: str) -> type[Loader]:
    """The loader class registered as ``name``."""
    result: type[Loader] = get_host()._get("loaders", name)
    return result


def get_metric(name: str) -> Callable[..., Any]:
    """The metric function registered as ``name``."""
    result: Callable[..., Any] = get_host()._get("metrics", name)
    return result


def resolve_task(parts: ModelParts, task: str | None) -> type[Task]:
    """The task class for ``parts``: ``task`` if given, else the loader's hint, else inferred from
    the config (exactly one registered task must match; otherwise ``ConfigError`` lists the choices)."""
    name = task or parts.task_hint
    if name:
        return get_task(name)
    host = get_host()
    matches = [cls for cls in host.tasks.values() if cls.matches(parts)]
    if len(matches) == 1:
        return matches[0]
    architectures = getattr(parts.config, "architectures", None)
    choices = ", ".join(sorted(host.tasks))
    found = (
        f"its config lists architectures {architectures}" if architectures else "it has no architectures in its config"
    )
    if len(matches) > 1:
        found += f" (matching several tasks: {', '.join(m.name for m in matches)})"
    raise ConfigError(f"cannot infer the task of {parts.source.location!r}: {found}. Pass task=... one of: {choices}")
