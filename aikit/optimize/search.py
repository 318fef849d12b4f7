"""``Model.optimize``: the fastest (or smallest) variant of a model that keeps quality within a budget.

How the search works (docs/explanation/optimize.md says the same at length):

1. **Candidates** come from plugins (``aikit_optimize_candidates``) or the caller: a backend,
   options, and a chain of strategies. The model as loaded is always the reference candidate.
2. **Split.** Every fourth calibration input (positions 3, 7, 11, ...) is held out for quality;
   the rest calibrate the strategies that need data. Interleaving keeps both parts the same mix
   of lengths and topics as the whole list. No candidate is calibrated on a held-out input.
3. **Cheap first.** Each candidate is built (conversions are cached for the run; ORT strategies
   cache their graphs on disk), then scored on the first quarter of the held-out batches; only
   if that stays within the budget is it scored on all of them, and only then timed. For
   min-based metrics (``1 - cosine_min``, ``1 - label agreement`` on a subset) the early
   rejection is exact: a subset's minimum cannot be lower than the whole set's.
4. **Timing** is side by side in this process: each candidate interleaved with the reference
   after a warm-up, best of three rounds (throughput at ``batch_size``) and the median of
   single-input runs (latency). The best few are then re-timed together in a final round and
   the winner is taken from that round.
5. **Bounds.** ``budget_seconds`` stops trying new candidates and stops an accuracy guard under
   way (the candidate is reported as not finished); Ctrl-C stops at once. Either way the best
   candidate measured so far is returned and the report is marked partial.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aikit.contracts.candidate import Candidate
from aikit.contracts.options import GenerationOptions
from aikit.errors import AikitError, ConfigError, InputError
from aikit.measure.batch_size import candidate_sizes, fastest_batch_size
from aikit.optimize._report import CHOSEN, NOT_TRIED, REJECTED, WITHIN_BUDGET, CandidateResult, OptimizationReport
from aikit.progress import progress_bar

if TYPE_CHECKING:
    from aikit.contracts.backend import Backend
    from aikit.model.model import Model

__all__ = ["OBJECTIVES", "optimize_model", "proposed_candidates", "split_calibration"]

logger = logging.getLogger("aikit.optimize")

OBJECTIVES = ("throughput", "latency", "size", "memory")
HOLD_OUT_EVERY = 4  # every 4th calibration input is held out for quality
MIN_CALIBRATION = 8
ROUNDS = 3
FINAL_ROUND = 3  # how many of the best candidates are re-timed together at the end
LATENCY_ITEMS = 16
TIMING_ITEMS = 256
KEEP_BUILT = FINAL_ROUND + 2  # built models held in memory for the final round
TOO_SLOW = 3.0  # a candidate this many times slower than the reference in the warm-up is not timed further
_SIMD = {"avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16", "avx512_bf16", "neon"}


def split_calibration(items: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """``(fit, held_out)``: every ``HOLD_OUT_EVERY``-th item (positions 3, 7, ...) is held out."""
    items = list(items)
    held = [x for i, x in enumerate(items) if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1]
    fit = [x for i, x in enumerate(items) if i % HOLD_OUT_EVERY != HOLD_OUT_EVERY - 1]
    return fit, held


def proposed_candidates(model: Model, objective: str) -> tuple[list[Candidate], list[str]]:
    """Candidates every plugin proposes for ``model``, and notes naming plugins that failed to propose.

    Each implementation is called on its own so that one broken plugin costs only its proposals.
    """
    from aikit.plugins.host import get_host

    host = get_host()
    found: list[Candidate] = []
    notes: list[str] = []
    # One plugin at a time, through pluggy's call loop (tracing and the plugin's own wrappers hold).
    names = sorted({impl.plugin_name for impl in host.pm.hook.aikit_optimize_candidates.get_hookimpls()})
    for name in names:
        mine: list[Candidate] = []

        def propose(candidate: Candidate, _into: list[Candidate] = mine) -> None:
            if not isinstance(candidate, Candidate):
                raise ConfigError(f"propose() takes an aikit.Candidate, got {type(candidate).__name__}")
            _into.append(candidate)

        try:
            host.call_plugin("aikit_optimize_candidates", name, model=model, objective=objective, propose=propose)
        except Exception as exc:  # a broken plugin is reported, not fatal
            notes.append(f"plugin {name!r} failed to propose candidates: {type(exc).__name__}: {exc}")
            logger.warning("plugin %r failed to propose optimize candidates: %s", name, exc)
            continue
        found.extend(mine)
    return found, notes


@dataclass
class _Timing:
    """Durations of one measurement: per batch (throughput), per input or per token (latency)."""

    batches: list[float] = field(default_factory=list)
    singles: list[float] = field(default_factory=list)


class _Search:
    def __init__(
        self,
        model: Model,
        *,
        calibration: Sequence[Any],
        bound: float,
        objective: str,
        batch_size: int,
        max_new_tokens: int,
    ) -> None:
        import aikit.measure.quality as ev

        self.model = model
        self.bound = bound
        self.objective = objective
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        fit, held = split_calibration(calibration)
        self.fit_count, self.held_count = len(fit), len(held)
        self.metric: str | None = None  # the task's bounded quality metric, once one candidate was scored
        self.data = ev.split_data(model.task, fit, held)
        if not self.data.eval:
            raise InputError(
                f"the {model.task.name} task produced no batches from the calibration inputs, so quality "
                "cannot be measured; pass inputs of the kind the model predicts on"
            )
        self.quick = max(1, len(self.data.eval) // 4)
        self.reference = ev.summarise(model.task, model.backend, self.data.eval)
        self.generative = bool(model.task.generative) and model.backend.can_generate
        if self.generative:
            self.prompts = self._prompts(held)
            self.timing_batches: list[dict[str, Any]] = []
            self.singles: list[dict[str, Any]] = []
            self.unit = "tokens/s"
            self.pass_work = 0.0  # tokens per timed pass: set by the first ``measure``
        else:
            items = list(calibration)[:TIMING_ITEMS]
            self.timing_batches = ev.collate_batches(model.task, items, batch_size)
            self.singles = ev.collate_batches(model.task, held[:LATENCY_ITEMS], 1)
            self.unit = "items/s"
            self.pass_work = float(len(items))
        self.converted: dict[str, Model | str] = {}
        self.deadline: float | None = None  # perf_counter time at which budget_seconds runs out

    # ------------------------------------------------------------------ data
    def _prompts(self, held: Sequence[Any]) -> list[dict[str, Any]]:
        """Batch-1 prompts of at most 32 tokens for decode timing (plain text, no chat template)."""
        tokenizer = self.model.parts.tokenizer
        texts = [str(t) for t in held[:1]] or ["The model reads this sentence and continues it."]
        out = []
        for text in texts:
            enc = tokenizer(text, truncation=True, max_length=32, return_tensors="np")
            out.append(
                {"input_ids": enc["input_ids"].astype("int64"), "attention_mask": enc["attention_mask"].astype("int64")}
            )
        return out

    # ------------------------------------------------------------------ quality
    def drop(self, backend: Backend, *, quick: bool = False) -> tuple[dict[str, float], str, float]:
        """``(metrics, metric name, quality drop)`` on the held-out batches (``quick``: the first quarter)."""
        import aikit.measure.quality as ev

        n = self.quick if quick else len(self.data.eval)
        return ev.measure_quality(self.reference[:n], ev.summarise(self.model.task, backend, self.data.eval[:n]))

    def _drop_before_deadline(self, backend: Backend) -> tuple[dict[str, float], str, float]:
        """:meth:`drop` for the accuracy guard, which scores one trial per layer it considers (tens of
        seconds for MiniLM's ONNX int8, more for larger models): past ``budget_seconds`` it raises
        ``_BudgetSpentError`` instead, so a guard under way does not run the search far past its budget."""
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise _BudgetSpentError("its accuracy guard was stopped: budget_seconds ran out")
        return self.drop(backend)

    # ------------------------------------------------------------------ building
    def convert(self, candidate: Candidate) -> Model:
        key = json.dumps([candidate.backend, dict(candidate.backend_options)], sort_keys=True)
        if key not in self.converted:
            if candidate.backend == self.model.backend.name and not candidate.backend_options:
                self.converted[key] = self.model
            else:
                try:
                    self.converted[key] = self.model.to(
                        candidate.backend, backend_options=dict(candidate.backend_options) or None
                    )
                except Exception as exc:
                    self.converted[key] = f"conversion to {candidate.backend!r} failed: {type(exc).__name__}: {exc}"
        done = self.converted[key]
        if isinstance(done, str):
            raise _RejectedError(done)
        return done

    def build(self, candidate: Candidate, result: CandidateResult) -> Model:
        """The candidate's model, checked against the quality bound (raises ``_RejectedError``)."""
        from aikit.compress.chain import (
            CompressionRun,
            apply_chain,
            chain_report,
            check_plan,
            new_model,
            resolve_configs,
        )
        from aikit.plugins.host import get_backend

        try:
            backend_cls = get_backend(candidate.backend)
            configs = resolve_configs(candidate.strategies) if candidate.strategies else []
            plan = check_plan(configs, candidate.backend, bool(self.data.fit))
        except AikitError as exc:
            raise _RejectedError(str(exc)) from exc
        unavailable = backend_cls.unavailable_reason()
        if unavailable:
            raise _RejectedError(f"backend unavailable here: {unavailable}")
        base = self.convert(candidate)
        run = CompressionRun(task=self.model.task, calibration=self.data.fit)
        backend, applied, excluded = apply_chain(base.backend, plan, configs, run, drop_of=self.drop, bound=None)
        metrics, metric, drop = self.drop(backend, quick=True)
        if drop <= self.bound:
            metrics, metric, drop = self.drop(backend)
        if drop > self.bound and candidate.guard and configs:
            logger.info("%s: quality drop %.4f > %s, running the accuracy guard", candidate.label, drop, self.bound)
            try:
                backend, applied, excluded = apply_chain(
                    base.backend, plan, configs, run, drop_of=self._drop_before_deadline, bound=self.bound
                )
            except AikitError as exc:
                result.quality, result.quality_drop = metrics, drop
                raise _RejectedError(f"accuracy guard could not hold the bound: {exc}") from exc
            metrics, metric, drop = self.drop(backend)
        result.quality, result.quality_drop, result.excluded_layers = metrics, drop, list(excluded)
        self.metric = metric
        if drop > self.bound:
            raise _RejectedError(f"quality drop {drop:.4f} > {self.bound} ({metric})")
        result.strategies = [c.to_dict() for c in applied]
        result.size_bytes = backend.weight_bytes()
        if not configs:
            return base
        known = (metrics, metric, drop)

        def drop_of(other: Backend) -> tuple[dict[str, float], str, float]:
            return known if other is backend else self.drop(other)

        report = chain_report(base, backend, applied, self.data, drop_of, excluded, run.notes, False, self.bound, plan)
        return new_model(base, backend, applied, report)

    # ------------------------------------------------------------------ timing
    def measure(self, backend: Backend) -> _Timing:
        """One timed pass: every timing batch, then every single input (or decode steps for generation)."""
        timing = _Timing()
        if self.generative:
            for prompt in self.prompts:
                steps = backend.generate(prompt, GenerationOptions(max_new_tokens=self.max_new_tokens))
                try:
                    last = time.perf_counter()
                    for _ in steps:
                        now = time.perf_counter()
                        timing.singles.append(now - last)
                        last = now
                finally:
                    close = getattr(steps, "close", None)
                    if callable(close):
                        close()
            timing.batches = [sum(timing.singles)]
            self.pass_work = float(len(timing.singles))  # tokens per pass: every step is consumed, EOS or not
            return timing
        for batch in self.timing_batches:
            start = time.perf_counter()
            backend.forward(batch)
            timing.batches.append(time.perf_counter() - start)
        for single in self.singles:
            start = time.perf_counter()
            backend.forward(single)
            timing.singles.append(time.perf_counter() - start)
        return timing

    def race(self, backends: Sequence[Backend], rounds: int = ROUNDS) -> list[tuple[float, float]]:
        """``(best total seconds, p50 single seconds)`` per backend, timed interleaved after a warm-up.

        The first backend is the reference. A backend over ``TOO_SLOW`` times slower than it in the
        warm-up is not timed further (its warm-up figures stand): it cannot win, and timing a kernel
        fifty times slower than fp32 three more times would eat the search's budget.
        """
        warm = [self.measure(backend) for backend in backends]
        totals = [sum(t.batches) for t in warm]
        singles: list[list[float]] = [list(t.singles) for t in warm]
        racing = [i for i in range(len(backends)) if i == 0 or totals[i] <= TOO_SLOW * totals[0]]
        for i in racing:
            totals[i], singles[i] = math.inf, []
        for r in range(rounds):
            if r and self.deadline is not None and time.perf_counter() > self.deadline:
                break  # past budget_seconds: one round after the warm-up is the least that counts
            order = list(racing)
            if r % 2:
                order.reverse()  # alternate the order so drift (thermal, caches) does not favour one side
            for i in order:
                t = self.measure(backends[i])
                totals[i] = min(totals[i], sum(t.batches))
                singles[i].extend(t.singles)
        return [(totals[i], statistics.median(singles[i]) if singles[i] else math.nan) for i in range(len(backends))]

    def score(self, result: CandidateResult) -> tuple[float, ...]:
        """Sort key, lower is better, for the objective (speed breaks ties)."""
        speed = -(result.speedup or 0.0)
        if self.objective == "size":
            return (float(result.size_bytes if result.size_bytes is not None else math.inf), speed)
        if self.objective == "memory":
            return (float(result.memory_bytes if result.memory_bytes is not None else math.inf), speed)
        return (speed,)


class _RejectedError(Exception):
    """A candidate that cannot run here or misses the quality bound; the message says why."""


class _BudgetSpentError(Exception):
    """``budget_seconds`` ran out while a candidate was being built (in its accuracy guard)."""


def _check_arguments(
    calibration: Sequence[Any] | None,
    bound: float,
    objective: str,
    batch_size: int | None,
    budget_seconds: float | None,
) -> None:
    if calibration is None or isinstance(calibration, (str, bytes)) or not isinstance(calibration, Sequence):
        raise ConfigError(
            "optimize() needs calibration=[...]: a list of a few hundred real inputs of the kind the model will "
            "see (CLI: --calibration FILE, one input per line); quality is measured on a held-out part of it"
        )
    if len(calibration) < MIN_CALIBRATION:
        raise ConfigError(
            f"optimize() needs at least {MIN_CALIBRATION} calibration inputs (got {len(calibration)}): every "
            f"{HOLD_OUT_EVERY}th is held out to measure quality on; a few hundred give a trustworthy estimate"
        )
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not 0 <= float(bound) < 1:
        raise ConfigError(f"max_quality_drop must be a number in [0, 1), got {bound!r}")
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    if budget_seconds is not None and (isinstance(budget_seconds, bool) or not budget_seconds > 0):
        raise ConfigError(f"budget_seconds must be a positive number of seconds or None, got {budget_seconds!r}")


def optimize_model(
    model: Model,
    *,
    calibration: Sequence[Any] | None,
    max_quality_drop: float = 0.01,
    objective: str = "throughput",
    batch_size: int | None = None,
    budget_seconds: float | None = 600.0,
    candidates: Sequence[Candidate] | None = None,
    max_new_tokens: int = 16,
    progress: bool | None = None,
    on_candidate: Callable[[CandidateResult], None] | None = None,
) -> Model:
    """The work behind ``Model.optimize`` (see its docstring and this module's)."""
    from aikit.measure.benchmark import MemorySampler
    from aikit.sysinfo import cpu_flags, cpu_model

    start = time.perf_counter()
    _check_arguments(calibration, max_quality_drop, objective, batch_size, budget_seconds)
    tune_batch = batch_size is None and objective == "throughput"
    batch_size = batch_size or model.task.batch_size
    assert calibration is not None
    notes: list[str] = []
    if candidates is None:
        proposals, notes = proposed_candidates(model, objective)
    else:
        proposals = list(candidates)
        if not all(isinstance(c, Candidate) for c in proposals):
            raise ConfigError("candidates= takes a list of aikit.Candidate objects")
    search = _Search(
        model,
        calibration=calibration,
        bound=float(max_quality_drop),
        objective=objective,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
    )
    fit_n, held_n = search.fit_count, search.held_count
    report = OptimizationReport(
        objective=objective,
        max_quality_drop=float(max_quality_drop),
        quality_metric=None,
        batch_size=1 if search.generative else batch_size,
        throughput_unit=search.unit,
        held_out=(
            f"{held_n} of {len(calibration)} calibration inputs (every {HOLD_OUT_EVERY}th), never used to calibrate; "
            f"strategies calibrated on the other {fit_n}. For a min-based metric, an unseen input falls below the "
            f"held-out minimum with probability about 1/{held_n + 1} (order statistics of exchangeable inputs): "
            "hold out more inputs for a tighter guarantee"
        ),
        machine={
            "cpu": cpu_model(),
            "simd": sorted(
                cpu_flags()
                & {"avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16", "avx512_bf16", "neon"}
            ),
        },
        notes=notes,
    )
    # The reference: the model as loaded. Timed alone here so its row has absolute figures.
    reference = CandidateResult(label=f"{model.backend.name} (as loaded)", backend=model.backend.name)
    reference.strategies = list(model.transformations)
    reference.quality_drop, reference.speedup, reference.status = 0.0, 1.0, WITHIN_BUDGET
    reference.size_bytes = model.backend.weight_bytes()
    if budget_seconds is not None:
        search.deadline = start + budget_seconds
    # One round after the warm-up: the reference is re-timed in every race a candidate runs.
    ((ref_total, ref_p50),) = search.race([model.backend], rounds=1)
    reference.throughput = search.pass_work / ref_total
    reference.latency_p50_s = ref_p50
    report.candidates.append(reference)

    unique: dict[str, Candidate] = {}
    baseline_key = Candidate(backend=model.backend.name).key()
    for c in proposals:
        if c.key() != baseline_key:
            unique.setdefault(c.key(), c)
    # Cheap first: plain moves, then chains, then chains that may run the (costly) accuracy guard.
    todo = sorted(unique.values(), key=lambda c: (bool(c.strategies), c.guard))
    results = {c.key(): CandidateResult(label=c.label, backend=c.backend, note=c.note) for c in todo}
    report.candidates += list(results.values())
    built: dict[str, Model] = {}
    bar = progress_bar(len(todo), desc="optimize", unit="candidate", enabled=progress)
    spent = f"budget_seconds={budget_seconds} reached"  # why the search stopped, when the budget ran out
    try:
        for candidate in todo:
            result = results[candidate.key()]
            if budget_seconds is not None and time.perf_counter() - start > budget_seconds:
                report.partial, report.stopped_because = True, spent
                break
            if bar is not None:
                bar.set_description(f"optimize: {candidate.label}"[:70])
            logger.info("optimize: trying %s", candidate.label)
            t0 = time.perf_counter()
            try:
                with MemorySampler() as memory:
                    variant = search.build(candidate, result)
                    if search.timing_batches:
                        variant.backend.forward(search.timing_batches[0])
                result.build_seconds = time.perf_counter() - t0
                if memory.peak is not None and memory.before is not None:
                    result.memory_bytes = max(0, memory.peak - memory.before)
                (t_ref, p_ref), (t_new, p_new) = search.race([model.backend, variant.backend])
                result.speedup = (p_ref / p_new) if objective == "latency" else (t_ref / t_new)
                result.throughput = search.pass_work / t_new
                result.latency_p50_s = p_new
                result.status = WITHIN_BUDGET
                built[candidate.key()] = variant
                _keep_best(built, results, search)
            except _RejectedError as exc:
                result.status, result.reason = REJECTED, str(exc)
                result.build_seconds = time.perf_counter() - t0
            except _BudgetSpentError as exc:
                result.status, result.reason = NOT_TRIED, f"not finished: {exc}"
                result.build_seconds = time.perf_counter() - t0
                report.partial, report.stopped_because = True, spent
            except Exception as exc:
                # A strategy or backend failing on this model is a finding about the candidate, not the
                # search: it is reported in the table (broken plugins are reported, not fatal).
                result.status, result.reason = REJECTED, f"failed: {type(exc).__name__}: {exc}"
                result.build_seconds = time.perf_counter() - t0
                logger.info("optimize: %s failed: %s", candidate.label, exc)
            logger.info("optimize: %s -> %s %s", candidate.label, result.status, result.reason or "")
            if on_candidate is not None:
                on_candidate(result)
            if bar is not None:
                bar.update(1)
        else:
            _final_round(search, model, reference, built, results, report)
    except KeyboardInterrupt:
        report.partial, report.stopped_because = True, "interrupted (Ctrl-C)"
        notes.append("interrupted: the best candidate measured so far was chosen")
    finally:
        if bar is not None:
            bar.close()
    for result in report.candidates:
        if result.status == NOT_TRIED and report.partial:
            result.reason = result.reason or f"not tried: {report.stopped_because}"
    report.quality_metric = search.metric
    winner_key = _choose(search, reference, results, built)
    chosen = model if winner_key is None else built[winner_key]
    winner = reference if winner_key is None else results[winner_key]
    winner.status, report.chosen = CHOSEN, winner.label
    parts = chosen.parts
    if tune_batch and not search.generative and not report.partial:
        # Timed on the calibration's first inputs, like the candidates.
        timed = list(calibration)[:TIMING_ITEMS]
        tuned = fastest_batch_size(chosen, timed, candidate_sizes(batch_size), rounds=ROUNDS)
        if tuned is not None:
            best, rates = tuned
            report.batch_size_chosen = best
            report.notes.append(
                "batch size measured on the chosen model ("
                + ", ".join(f"{bs}: {rate:.1f} {search.unit}" for bs, rate in sorted(rates.items()))
                + f"); predict now defaults to {best} (saved with the model)"
            )
            parts = dataclasses.replace(parts, task_state={**parts.task_state, "batch_size": best})
    report.seconds = time.perf_counter() - start
    from aikit.model.model import Model

    return Model(
        task=type(chosen.task)(parts) if parts is not chosen.parts else chosen.task,
        backend=chosen.backend,
        parts=parts,
        transformations=chosen.transformations,
        compression_report=chosen.compression_report,
        optimization_report=report,
    )


def _keep_best(built: dict[str, Model], results: dict[str, CandidateResult], search: _Search) -> None:
    """Drop built models that can no longer reach the final round (they hold whole weight copies)."""
    if len(built) <= KEEP_BUILT:
        return
    ranked = sorted(built, key=lambda k: search.score(results[k]))
    for key in ranked[KEEP_BUILT:]:
        del built[key]


def _final_round(
    search: _Search,
    model: Model,
    reference: CandidateResult,
    built: dict[str, Model],
    results: dict[str, CandidateResult],
    report: OptimizationReport,
) -> None:
    """Re-time the best few and the reference together, so the winner is picked from one fair race."""
    finalists = sorted(built, key=lambda k: search.score(results[k]))[:FINAL_ROUND]
    if not finalists:
        return
    timed = search.race([model.backend, *(built[k].backend for k in finalists)])
    (t_ref, p_ref) = timed[0]
    reference.throughput, reference.latency_p50_s = search.pass_work / t_ref, p_ref
    for key, (t_new, p_new) in zip(finalists, timed[1:]):
        r = results[key]
        r.speedup = (p_ref / p_new) if search.objective == "latency" else (t_ref / t_new)
        r.latency_p50_s = p_new
        r.throughput = search.pass_work / t_new
    report.notes.append(
        f"final round: {', '.join(results[k].label for k in finalists)} re-timed together with the reference "
        f"({ROUNDS} interleaved rounds); their figures and the reference's come from that round, the others' "
        "from their own race against the reference"
    )
    for key in set(built) - set(finalists):
        del built[key]


def _choose(
    search: _Search, reference: CandidateResult, results: dict[str, CandidateResult], built: dict[str, Model]
) -> str | None:
    """The best built candidate for the objective, or None when the model as loaded is best."""
    best_key: str | None = None
    best_score = search.score(reference)
    for key in built:
        score = search.score(results[key])
        if score < best_score:
            best_key, best_score = key, score
    return best_key
