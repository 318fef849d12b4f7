"""``Model.compress``: parse strategies, check them, apply them in order, guard quality, report.

Strategies are plugins (``aikit_register_strategies``). A strategy may also offer the accuracy
guard: a config field ``exclude`` (layer names kept in full precision) and a method
``guard_layers(backend, config) -> list[str]`` naming the layers it would compress in that backend. When
``max_quality_drop`` is given and the quality drop after that strategy exceeds it, the guard
ranks those layers by sensitivity (quality drop with only that layer compressed) and excludes the
most sensitive ones until the bound holds; a strategy without the guard raises ``CompressionError``.

The quality drop is one number per task (see ``aikit.measure.quality``): ``1 - min cosine`` for
embeddings, relative perplexity increase for text generation, ``1 - label agreement`` otherwise.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aikit.contracts.strategy import CompressionConfig, CompressionContext, Strategy
from aikit.errors import CompressionError, ConfigError, PerformanceWarning
from aikit.plugins.host import get_host, get_strategy, strategies_for
from aikit.progress import progress_bar

if TYPE_CHECKING:
    from aikit.compress.report import CompressionReport
    from aikit.contracts.backend import Backend
    from aikit.model.model import Model

__all__ = [
    "CompressionRun",
    "apply_chain",
    "can_guard",
    "check_plan",
    "compress_model",
    "new_model",
    "parse_strategy",
    "resolve_configs",
]

SLOWER_THRESHOLD = 0.95  # below this speedup (timing noise allowed for) the report says "slower"


# ---------------------------------------------------------------------- parsing
def _parse_value(text: str, default: Any) -> Any:
    low = text.strip().lower()
    if isinstance(default, tuple):
        return tuple(part.strip() for part in text.split("|") if part.strip())
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text.strip()


def parse_strategy(text: str) -> CompressionConfig:
    """Turn a CLI shorthand into a config: ``"int8-dynamic"``, ``"prune-structured:ffn=0.3,heads=0.25"``.

    Values are parsed as booleans, numbers or strings; tuple options take ``a|b|c``. Raises
    ``UnknownNameError`` for an unknown strategy and ``ConfigError`` for bad options.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"a strategy must be a non-empty string or a CompressionConfig, got {text!r}")
    text = text.strip()
    names = sorted(get_host().strategies, key=len, reverse=True)
    name = next((n for n in names if text == n or text.startswith(n + ":")), None)
    if name is None:
        get_strategy(text.split(":", 1)[0])  # raises UnknownNameError listing the choices
        raise ConfigError(f"cannot parse strategy {text!r}")  # pragma: no cover - get_strategy raised
    config_class = get_strategy(name).config_class
    defaults = {f.name: f.default for f in dataclasses.fields(config_class)}
    fields: dict[str, Any] = {}
    options = text[len(name) + 1 :]
    for item in filter(None, (p.strip() for p in options.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq:
            raise ConfigError(f"{name}: option {item!r} needs the form key=value (valid keys: {', '.join(defaults)})")
        fields[key] = _parse_value(value, defaults.get(key))
    return config_class.from_fields(fields)


def resolve_configs(strategies: Iterable[str | CompressionConfig]) -> list[CompressionConfig]:
    """Config objects for ``strategies`` (shorthands parsed), each of a registered strategy's type."""
    configs: list[CompressionConfig] = []
    for item in strategies:
        if isinstance(item, CompressionConfig):
            strategy_cls = get_strategy(item.strategy)
            if not isinstance(item, strategy_cls.config_class):
                raise ConfigError(
                    f"config {type(item).__name__} says strategy {item.strategy!r}, whose config class is "
                    f"{strategy_cls.config_class.__name__}"
                )
            configs.append(item)
        elif isinstance(item, str):
            configs.append(parse_strategy(item))
        else:
            raise ConfigError(f"strategies are shorthands or CompressionConfig objects, got {type(item).__name__}")
    if not configs:
        raise ConfigError("compress() needs at least one strategy, e.g. model.compress('int8-dynamic')")
    return configs


def backend_for(strategies: Iterable[str | CompressionConfig]) -> str:
    """The backend to load a model on so that every strategy of the chain can run on it.

    Strategies declare the backends they run on (``Strategy.backends``); of those all of them share
    and that are available here, the one with the highest ``priority`` (what ``backend="auto"`` would
    rank first). ``CompressionError`` names the strategies when they share none.
    """
    configs = resolve_configs(strategies)
    common: set[str] | None = None
    for config in configs:
        declared = set(get_strategy(config.strategy).backends)
        common = declared if common is None else common & declared
    host = get_host()
    usable = [
        cls for name, cls in host.backends.items() if name in (common or set()) and cls.unavailable_reason() is None
    ]
    if not usable:
        names = ", ".join(c.strategy for c in configs)
        raise CompressionError(
            f"no backend available here runs every strategy of {names}: they declare "
            + "; ".join(
                f"{c.strategy}: {', '.join(sorted(get_strategy(c.strategy).backends)) or 'none'}" for c in configs
            )
        )
    return min(usable, key=lambda cls: (-cls.priority, cls.name)).name


def check_plan(configs: Sequence[CompressionConfig], backend: str, has_calibration: bool) -> list[Strategy]:
    """Check every step before any work: the backend can run it and calibration data is there."""
    strategies = []
    for config in configs:
        cls = get_strategy(config.strategy)
        if backend not in cls.backends:
            here = strategies_for(backend)
            raise CompressionError(
                f"strategy {cls.name!r} runs on backend(s) {', '.join(sorted(cls.backends)) or 'none'}, "
                f"not on {backend!r}. Either load the model with backend={sorted(cls.backends)[0]!r} first "
                f"(compress, then model.to({backend!r})), or use a strategy for {backend!r}: "
                f"{', '.join(here) or 'none registered'}"
                if cls.backends
                else f"strategy {cls.name!r} declares no backends it can run on"
            )
        if cls.needs_calibration and not has_calibration:
            raise CompressionError(
                f"strategy {cls.name!r} needs calibration data: pass calibration=[...] with a few hundred "
                "real inputs of the kind the model will see (CLI: --calibration FILE, one input per line)"
            )
        strategies.append(cls())
    return strategies


# ---------------------------------------------------------------------- running
@dataclass(kw_only=True)
class CompressionRun(CompressionContext):
    """The context strategies receive: calibration batches, progress, and notes for the report."""

    notes: list[str] = field(default_factory=list)


def compress_model(
    model: Model,
    strategies: Sequence[str | CompressionConfig],
    *,
    calibration: Sequence[Any] | None,
    max_quality_drop: float | None,
    measure_speed: bool,
    progress: bool | None,
) -> Model:
    """The work behind ``Model.compress`` (see its docstring and this module's)."""
    import aikit.measure.quality as ev

    start = time.perf_counter()
    if max_quality_drop is not None and (isinstance(max_quality_drop, bool) or not 0 <= float(max_quality_drop) < 1):
        raise ConfigError(f"max_quality_drop must be a number in [0, 1), got {max_quality_drop!r}")
    if calibration is not None and (isinstance(calibration, (str, bytes)) or not isinstance(calibration, Sequence)):
        raise ConfigError("calibration must be a list of inputs (e.g. a list of sentences), not a single string")
    configs = resolve_configs(strategies)
    plan = check_plan(configs, model.backend.name, bool(calibration))
    if max_quality_drop is not None and not calibration:
        raise CompressionError("max_quality_drop needs calibration=[...] inputs to measure quality on")
    data = ev.prepare_data(model.task, calibration)
    reference = ev.summarise(model.task, model.backend, data.eval) if data.eval else []

    def drop_of(backend: Backend) -> tuple[dict[str, float], str, float]:
        return ev.measure_quality(reference, ev.summarise(model.task, backend, data.eval))

    bar = progress_bar(len(configs), desc="compress", unit="step", enabled=progress)
    run = CompressionRun(task=model.task, calibration=data.fit)
    bound = None if max_quality_drop is None else float(max_quality_drop)
    try:
        current, applied, excluded = apply_chain(
            model.backend, plan, configs, run, drop_of=drop_of, bound=bound, bar=bar
        )
    finally:
        if bar is not None:
            bar.close()
    report = chain_report(
        model, current, applied, data, drop_of, excluded, run.notes, measure_speed, max_quality_drop, plan
    )
    report.seconds = time.perf_counter() - start
    return new_model(model, current, applied, report)


def apply_chain(
    base: Backend,
    plan: Sequence[Strategy],
    configs: Sequence[CompressionConfig],
    run: CompressionRun,
    *,
    drop_of: Callable[[Backend], tuple[dict[str, float], str, float]],
    bound: float | None,
    bar: Any = None,
) -> tuple[Backend, list[CompressionConfig], list[str]]:
    """Apply ``configs`` in order on ``base`` (checked by ``check_plan``); with ``bound``, guard each step.

    Returns the final backend, the configs as applied (the guard adds exclusions) and the layers
    the guard kept in full precision. ``base`` is never modified.
    """
    current, applied, excluded = base, [], []
    for strategy, config in zip(plan, configs):
        if bar is not None:
            bar.set_description(f"compress: {config.strategy}")
        run.progress = _step_progress(bar)
        new = strategy.apply(current, config, run)
        if bound is not None:
            new, config, kept = _guard(strategy, current, config, run, new, drop_of, bound)
            excluded.extend(kept)
        current = new
        applied.append(config)
        if bar is not None:
            bar.update(1)
    return current, applied, excluded


def can_guard(strategy: Strategy, config: CompressionConfig) -> bool:
    """Whether the accuracy guard can keep layers of ``strategy`` in full precision."""
    return callable(getattr(strategy, "guard_layers", None)) and "exclude" in {
        f.name for f in dataclasses.fields(config)
    }


def _step_progress(bar: Any) -> Callable[[int, int], None]:
    def update(done: int, total: int) -> None:
        if bar is not None:
            bar.set_postfix_str(f"{done}/{total}", refresh=False)

    return update


def _guard(
    strategy: Strategy,
    base: Backend,
    config: CompressionConfig,
    run: CompressionRun,
    new: Backend,
    drop_of: Callable[[Backend], tuple[dict[str, float], str, float]],
    bound: float,
) -> tuple[Backend, CompressionConfig, list[str]]:
    """Keep the most sensitive layers in full precision until the quality drop is within ``bound``."""
    metrics, metric, drop = drop_of(new)
    if drop <= bound:
        return new, config, []
    if not can_guard(strategy, config):
        raise CompressionError(
            f"{config.strategy}: quality drop {drop:.4f} ({metric}; {_fmt(metrics)}) exceeds max_quality_drop={bound}, "
            "and this strategy cannot keep layers in full precision; use a milder setting or a larger bound"
        )
    candidates: list[str] = list(strategy.guard_layers(base, config))  # type: ignore[attr-defined]  # can_guard checked it
    already = tuple(getattr(config, "exclude", ()))
    sensitivity: dict[str, float] = {}
    for i, name in enumerate(candidates):  # quality drop with only this layer compressed
        only = dataclasses.replace(config, exclude=already + tuple(c for c in candidates if c != name))  # type: ignore[call-arg]
        sensitivity[name] = drop_of(strategy.apply(base, only, run))[2]
        run.progress(i + 1, len(candidates))
    ranking = sorted(candidates, key=lambda n: -sensitivity[n])
    kept: list[str] = []
    for name in ranking:
        kept.append(name)
        trial_config = dataclasses.replace(config, exclude=already + tuple(kept))  # type: ignore[call-arg]
        trial = strategy.apply(base, trial_config, run)
        metrics, metric, drop = drop_of(trial)
        if drop <= bound:
            run.notes.append(
                f"accuracy guard: kept {len(kept)} of {len(candidates)} layers of {config.strategy} in full precision "
                f"to hold {metric} <= {bound} (now {drop:.4f})"
            )
            return trial, trial_config, kept
    raise CompressionError(
        f"{config.strategy}: even with all {len(candidates)} layers kept in full precision the quality drop is "
        f"{drop:.4f} ({metric}; {_fmt(metrics)}) > max_quality_drop={bound}; earlier strategies in the chain may "
        "already exceed the bound"
    )


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())


def chain_report(
    model: Model,
    final: Backend,
    configs: list[CompressionConfig],
    data: Any,
    drop_of: Callable[[Backend], tuple[dict[str, float], str, float]],
    excluded: list[str],
    notes: list[str],
    measure_speed: bool,
    bound: float | None,
    plan: list[Strategy],
) -> CompressionReport:
    import aikit.compress._sizes as sizes
    import aikit.measure.quality as ev
    from aikit.compress.report import CompressionReport
    from aikit.sysinfo import cpu_model, has_int8_dot_product

    before, after = model.backend.torch_module(), final.torch_module()
    report = CompressionReport(
        strategies=[c.to_dict() for c in configs],
        task=model.task.name,
        backend=final.name,
        size_before_bytes=model.backend.weight_bytes() or 0,
        size_after_bytes=final.weight_bytes() or 0,
        parameters_before=sizes.count_weights(before) if before is not None else 0,
        parameters_after=sizes.count_weights(after) if after is not None else 0,
        layers=sizes.layer_changes(before, after) if before is not None and after is not None else [],
        excluded_layers=excluded,
        max_quality_drop=bound,
        notes=list(notes),
        machine={"cpu": cpu_model(), "int8_dot_product": has_int8_dot_product()},
    )
    if data.eval:
        report.quality, report.quality_metric, report.quality_drop = drop_of(final)
        report.evaluated_items = data.eval_items
    if measure_speed and data.timing:
        t0, t1 = ev.time_backends(model.backend, final, data.timing)
        work, unit = ev.timing_work(data.timing, model.task.generative)
        report.latency_before_s, report.latency_after_s = t0, t1
        report.speedup, report.throughput_unit = t0 / t1, unit
        report.throughput_before, report.throughput_after = work / t0, work / t1
        if data.synthetic_timing:
            report.notes.append("speed timed on a synthetic text batch (no calibration data given)")
        if report.speedup < SLOWER_THRESHOLD:
            report.slower = True
            reasons = [r for s in plan if (r := _slowdown_reason(s))]
            report.slower_reason = (
                "; ".join(dict.fromkeys(reasons)) or "the compressed kernels are slower than fp32 ones on this CPU"
            )
            warnings.warn(
                f"the compressed model is SLOWER than the original on this machine ({report.speedup:.2f}x): "
                f"{report.slower_reason}",
                PerformanceWarning,
                stacklevel=4,
            )
    elif measure_speed:
        report.notes.append("speed not measured: no inputs to time (pass calibration=[...])")
    return report


def _slowdown_reason(strategy: Strategy) -> str | None:
    reason = getattr(strategy, "slowdown_reason", None)
    return reason() if callable(reason) else None


def new_model(model: Model, backend: Backend, configs: list[CompressionConfig], report: CompressionReport) -> Model:
    from aikit.model.model import Model

    parts = dataclasses.replace(
        model.parts,
        module=backend.torch_module(),
        artifact_dir=None,
        manifest=None,
        task_state=dict(model.parts.task_state),
    )
    return Model(
        task=type(model.task)(parts),
        backend=backend,
        parts=parts,
        transformations=[*model.transformations, *(c.to_dict() for c in configs)],
        compression_report=report,
    )
