"""Component protocols (docs/architecture.md, Protocols) and the structural check applied to factory output.

Shapes: particles are ``Tensor[n, d]``; time ``t`` is forward Ornstein-Uhlenbeck time
(``t = 0`` is the data distribution, ``alpha_bar = exp(-2 t)``).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Optional, Protocol, runtime_checkable

import torch
from torch import Tensor

StepCallback = Callable[[int, float, Tensor], None]


@runtime_checkable
class Target(Protocol):
    """A distribution bench can draw exact samples from: ``dim`` and ``sample(n, generator)`` are required.

    Optional closed forms: ``log_prob(x, t=0) -> [n]`` (normalized log density of the OU marginal
    p_t) and ``score(x, t=0) -> [n, d]`` (its exact ``grad log p_t``). A target without ``score`` is
    *sample-only* (a data set): what needs a closed form (the ``exact`` score and the traps built on
    it, ``gaussian_kl``, ``score_error``, ``tv_witness``, ``tv_modes``) declares it with a class
    attribute ``closed_form_only = "<what to use instead>"`` and ``bench check`` refuses it there.

    Optional for a finite data set: ``split(seed) -> (training rows, held-out rows)``, the rows of one
    seed, preprocessed. The harness then draws the training set from the training rows only, and the
    reference samples and the ``fresh`` starts from the held-out rows only. Optional attributes:
    ``image_shape = (h, w)`` (rows are images, drawn as such in the report) and ``data_digest`` (a hash
    of the data file, part of every cell key, so an edited file reruns its cells).
    """

    dim: int

    def sample(self, n: int, generator: torch.Generator) -> Tensor: ...


@runtime_checkable
class ScoreEstimate(Protocol):
    """An estimate of ``grad log p_t``.

    Optional methods that metrics and samplers use when present: ``region(x) -> BoolTensor[n]``
    (the witness set where it is deliberately wrong), ``velocity_score(x, v, t)`` (its CLD form,
    needed by the ``cld`` sampler), ``active(t) -> bool`` (False where it equals the exact score by
    construction, so ``score_error.bar_sq`` skips that time), ``error_log_bound(target)`` and
    ``region_log_mass(target)`` (closed forms), ``training_times() -> list[float]`` (the OU times a learned
    estimate was trained at, read by ``dsm_loss``), ``diagnostics() -> dict``, ``prepare()`` (load what
    it needs; called before the sampler runs, so a failure there is recorded in the score), and
    ``training_job()`` for estimates that must be trained (a method of the factory class; see
    :mod:`bench_core.run.training`).

    Optional attribute ``rowwise = True`` declares that row i of ``score(x, t)`` depends on ``x[i]``
    alone (true of any function of one point: exact scores, traps, per-point networks). Samplers may
    then evaluate it a block of rows at a time, which keeps the step in cache; without it they call
    it on all rows at once. The conformance kit checks the declaration.
    """

    def __call__(self, x: Tensor, t: float) -> Tensor: ...


@runtime_checkable
class Initializer(Protocol):
    """Produces starting particles for Langevin-family samplers."""

    def __call__(self, n: int, *, target: Target, data: "TrainingData", generator: torch.Generator) -> Tensor: ...


@runtime_checkable
class Sampler(Protocol):
    """Moves particles ``x0`` using a score; ``family`` is "langevin" or "diffusion".

    A sampler sees the score estimate only (no target, no log-density): the harness passes it wrapped
    in a counter (:class:`bench_core.cell.nfe.CountingScore`) and records the number of score evaluations
    as ``nfe.calls`` / ``nfe.evals``. An optional ``diagnostics() -> dict[str, float]`` (e.g. an
    acceptance rate) is called after sampling and recorded as ``sampler.<key>``. An ``n_steps``
    attribute (the steps the callback sees; every built-in has one) bounds a cell's work before it
    runs (n_samples x d x n_steps) and shows its progress.

    Diffusion samplers also expose ``T`` (horizon), ``process`` ("ou" or "cld"),
    ``score_times() -> [(t_k, h_k)]`` (each score query time and the time it covers) and
    ``forward_coefficients(t) -> (a_t, sigma_t)`` (``x_t = a_t x_0 + sigma_t z``), from which
    ``score_error`` computes the time-averaged error over the sampler's own grid.
    """

    family: Literal["langevin", "diffusion"]

    def sample(self, score: ScoreEstimate, x0: Tensor, *, generator: torch.Generator,
               callback: Optional[StepCallback] = None) -> Tensor: ...


@runtime_checkable
class Metric(Protocol):
    """Scores a sample set; returns a float or a dict of named floats.

    Optional ``keys``: the dict keys it returns (``()`` for a single float). When declared, ``bench
    check`` refuses claims, ``rank_by`` and ``leaderboard_metrics`` naming another key, and the
    conformance kit checks the declaration against what ``__call__`` returns.
    """

    higher_is_better: bool

    def __call__(self, samples: Tensor, ctx: "MetricContext") -> float | dict[str, float]: ...


@runtime_checkable
class Executor(Protocol):
    """Runs ``fn`` on picklable tasks, yielding ``(task, fn(task))`` as each completes (any order);
    an exception raised running a task is yielded in place of its result."""

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[tuple[Any, Any]]: ...


@runtime_checkable
class Reporter(Protocol):
    """Writes files from a run's results (``bench_core.results.run_results.RunResults``); returns their paths."""

    def __call__(self, run: Any, out_dir: Path) -> list[Path]: ...


@dataclass
class TrainingData:
    """The training set of one (target, seed): ``train`` holds every duplicated row, ``distinct`` each
    row once; ``heldout``: the held-out rows of a finite data set (``Target.split``), else None."""

    train: Tensor
    distinct: Tensor
    duplicate: int = 1
    heldout: Optional[Tensor] = None


def sample_only(target: Any) -> bool:
    """Whether a target has no closed-form score (a data set): only its samples are known."""
    return not callable(getattr(target, "score", None))


@dataclass
class MetricContext:
    """What a metric may look at besides the samples."""

    target: Target
    reference: Tensor
    score: ScoreEstimate
    data: TrainingData
    sampler: Sampler
    generator: torch.Generator
    x0: Optional[Tensor] = None


def _reference(self: MetricContext) -> Tensor:
    value = self.__dict__["reference"]
    if not isinstance(value, Tensor) and callable(value):
        value = self.__dict__["reference"] = value()  # drawn on first use: a metric without it pays nothing
    return value


def _set_reference(self: MetricContext, value: Any) -> None:
    self.__dict__["reference"] = value


# ``reference`` may be given as a zero-argument function: the reference samples are then drawn the
# first time a metric reads ``ctx.reference`` (at n = 1e6, d = 50 they are 200 MB)
MetricContext.reference = property(_reference, _set_reference)  # type: ignore[assignment]


# What each kind's factory must return: the attributes checked after every call.
REQUIRED: dict[str, tuple[str, ...]] = {
    "targets": ("dim", "sample"),
    "scores": ("__call__",),
    "initializers": ("__call__",),
    "samplers": ("family", "sample"),
    "metrics": ("higher_is_better", "__call__"),
    "executors": ("map",),
    "reporters": ("__call__",),
}


def conformance_problem(kind: str, obj: Any) -> Optional[str]:
    """Return why ``obj`` is not a valid component of ``kind``, or None when it is."""
    missing = [a for a in REQUIRED[kind] if not hasattr(obj, a)]
    if missing:
        return f"it lacks {', '.join(repr(m) for m in missing)}"
    if kind == "samplers" and getattr(obj, "family") not in ("langevin", "diffusion"):
        return f"its family is {getattr(obj, 'family')!r}, not 'langevin' or 'diffusion'"
    if kind == "samplers":
        try:
            inspect.signature(obj.sample).bind(None, None, generator=None, callback=None)
        except TypeError as exc:
            return (f"its sample{inspect.signature(obj.sample)} cannot be called as "
                    f"sample(score, x0, *, generator, callback) ({exc}); give it callback=None and call "
                    "callback(step, t, x) after every step")
        except ValueError:
            pass  # no signature to inspect (a builtin): leave it to run time
    if kind == "targets" and not (isinstance(obj.dim, int) and obj.dim > 0):
        return f"its dim is {obj.dim!r}, not a positive int"
    if kind in ("scores", "initializers", "metrics", "reporters") and not callable(obj):
        return "it is not callable"
    return None
