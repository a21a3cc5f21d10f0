"""Conformance kit for plugin authors: call these from your own test suite.

Each ``check_*`` function raises ``AssertionError`` with a message that names the component,
what is wrong and how to fix it; it returns None when the component conforms.

>>> from bench_core.testing import check_sampler
>>> check_sampler(MySampler())                        # doctest: +SKIP
>>> check_plugin(my_plugin_module)                    # doctest: +SKIP
[('samplers', 'my_sampler', 'ok')]
"""
from __future__ import annotations

import inspect
import math
import numbers
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import Tensor

from .errors import SkipMetric
from .protocols import MetricContext, TrainingData, conformance_problem
from .registry import SINGULAR

__all__ = ["check_target", "check_score", "check_initializer", "check_sampler", "check_metric",
           "check_plugin"]

# |autograd - closed form| <= tol * (1 + |score|), elementwise, by input dtype
_GRAD_TOL = {torch.float32: 1e-3, torch.float64: 1e-6}


def _name(obj: Any) -> str:
    return type(obj).__name__


def _require(ok: Any, who: str, problem: str, fix: str) -> None:
    if not ok:
        raise AssertionError(f"{who}: {problem}; {fix}")


@contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _check_tensor(out: Any, who: str, what: str, shape: tuple[int, ...], dtype: torch.dtype,
                  device: torch.device, fix_dtype: str) -> None:
    """Type, shape, dtype, device and finiteness of one output tensor."""
    _require(isinstance(out, Tensor), who, f"{what} returned {type(out).__name__}, not a torch.Tensor",
             "return a tensor")
    _require(tuple(out.shape) == shape, who, f"{what} has shape {list(out.shape)}, expected {list(shape)}",
             "return one row per particle ([n, d]) or one value per particle ([n])")
    _require(out.dtype == dtype, who, f"{what} has dtype {out.dtype}, expected {dtype}", fix_dtype)
    _require(out.device == device, who, f"{what} is on {out.device}, expected {device}",
             "create tensors on the device of the input (or of the generator)")
    if out.dtype != torch.bool:
        _require(bool(torch.isfinite(out).all()), who, f"{what} has non-finite values",
                 "return finite values for finite inputs")


def check_target(target: Any, *, n: int = 2000, seed: int = 0) -> None:
    """Check a Target: protocol, ``sample``, ``log_prob`` and ``score`` (DESIGN section 4).

    Samples are checked under both default dtypes (float32 and float64): a target must draw in
    ``torch.get_default_dtype()`` on ``generator.device``, and two generators with the same seed
    must give identical draws. ``log_prob`` / ``score`` at ``t`` in (0, 0.5) must keep the dtype
    and device of their input and be finite. Finally ``score`` must equal the autograd gradient
    of ``log_prob`` at a few points (elementwise tolerance 1e-6 in float64, 1e-3 in float32,
    relative to ``1 + |score|``); this check is skipped when ``log_prob`` does not propagate
    gradients (its output does not require grad), e.g. a density computed outside torch.
    """
    who = f"target {_name(target)}"
    problem = conformance_problem("targets", target)
    _require(problem is None, who, f"does not follow the Target protocol: {problem}",
             "give it an int attribute 'dim' and methods sample, log_prob, score")
    d = target.dim
    for dtype in (torch.float32, torch.float64):
        with _default_dtype(dtype):
            gen = _gen(seed)
            x = target.sample(n, gen)
            _check_tensor(x, who, f"sample({n}, generator) under default dtype {dtype}", (n, d), dtype,
                          gen.device, "draw with dtype=torch.get_default_dtype() (the suite's dtype)")
            again = target.sample(n, _gen(seed))
            _require(torch.equal(x, again), who, "sample() is not deterministic: two generators with the "
                     "same seed gave different draws", "draw every random number from the generator "
                     "argument (generator=generator), never from the global RNG")
    for dtype in (torch.float32, torch.float64):
        xd = x.to(dtype)
        for t in (0.0, 0.5):
            _check_tensor(target.log_prob(xd, t), who, f"log_prob(x, t={t}) for {dtype} x", (n,), dtype,
                          xd.device, "compute in the dtype of x (e.g. constant.to(x))")
            _check_tensor(target.score(xd, t), who, f"score(x, t={t}) for {dtype} x", (n, d), dtype,
                          xd.device, "compute in the dtype of x (e.g. constant.to(x))")
    for dtype, tol in _GRAD_TOL.items():
        for t in (0.0, 0.5):
            xg = x[: min(n, 16)].detach().to(dtype).requires_grad_(True)
            lp = target.log_prob(xg, t)
            if not lp.requires_grad:
                return  # log_prob is not differentiable in torch: the gradient check does not apply
            (grad,) = torch.autograd.grad(lp.sum(), xg)
            score = target.score(xg.detach(), t)
            err = ((score - grad).abs() / (1 + score.abs())).max().item()
            _require(err <= tol, who, f"score(x, t={t}) is not the gradient of log_prob(x, t) in {dtype} "
                     f"(max relative difference {err:.3g} > {tol:g})",
                     "make score the exact grad_x log p_t (check its sign, scale and time dependence)")


def check_score(score: Any, target: Any, *, n: int = 256, seed: int = 0) -> None:
    """Check a ScoreEstimate on points drawn from ``target``.

    ``score(x, t)`` for float32 and float64 ``x`` and ``t`` in (0, 0.5) must return a finite
    ``[n, d]`` tensor of the dtype and device of ``x``, leave ``x`` unchanged and give the same
    value twice. If the score has ``region``, ``region(x)`` must be a bool tensor of shape [n].
    """
    who = f"score {_name(score)}"
    problem = conformance_problem("scores", score)
    _require(problem is None, who, f"does not follow the ScoreEstimate protocol: {problem}",
             "define __call__(self, x, t)")
    x = target.sample(n, _gen(seed))
    d = target.dim
    for dtype in (torch.float32, torch.float64):
        xd = x.to(dtype)
        copy = xd.clone()
        for t in (0.0, 0.5):
            out = score(xd, t)
            _check_tensor(out, who, f"score(x, t={t}) for {dtype} x", (n, d), dtype, xd.device,
                          "compute in the dtype and on the device of x (e.g. constant.to(x))")
            _require(torch.equal(xd, copy), who, "modified its input x in place",
                     "work on a copy (x.clone()) or use out-of-place operations")
            _require(torch.equal(out, score(xd, t)), who, f"score(x, t={t}) is not deterministic",
                     "a score estimate must be a fixed function of (x, t)")
        if hasattr(score, "region"):
            _check_tensor(score.region(xd), who, f"region(x) for {dtype} x", (n,), torch.bool, xd.device,
                          "return a bool tensor, one entry per particle (e.g. norms <= radius)")


def check_initializer(initializer: Any, target: Any, data: TrainingData, *, n: int = 500,
                      seed: int = 0) -> None:
    """Check an Initializer: a finite ``[n, d]`` tensor in the default dtype on the generator's
    device, identical for two generators with the same seed. ``data`` is used as given (build it
    in the current default dtype)."""
    who = f"initializer {_name(initializer)}"
    problem = conformance_problem("initializers", initializer)
    _require(problem is None, who, f"does not follow the Initializer protocol: {problem}",
             "define __call__(self, n, *, target, data, generator)")
    gen = _gen(seed)
    x = initializer(n, target=target, data=data, generator=gen)
    _check_tensor(x, who, f"initializer({n}, ...)", (n, target.dim), torch.get_default_dtype(), gen.device,
                  "return dtype=torch.get_default_dtype() (the suite's dtype)")
    again = initializer(n, target=target, data=data, generator=_gen(seed))
    _require(torch.equal(x, again), who, "is not deterministic: two generators with the same seed gave "
             "different points", "draw every random number from the generator argument")


def check_sampler(sampler: Any, *, dim: int = 2, n: int = 4000, seed: int = 0, tol: float = 0.25) -> None:
    """Check a Sampler: protocol, shapes, callback, determinism and where it lands.

    Runs (in float64) the sampler with the exact score of ``N(1, I_dim)`` from ``x0 ~ N(0, I)``
    (for diffusion samplers that is their prior) and requires: output shape == x0 shape, x0 not
    modified, ``callback(step: int, t: float, x: [n, d] tensor)`` called at least once, identical
    output for the same generator seed, and each coordinate's sample mean within
    ``tol + 5 se`` of 1 (se = sample std / sqrt(n)) and sample std within ``tol + 5 se`` of 1
    (se = 1 / sqrt(2 (n - 1)), the standard error of a Gaussian sample std): 5 standard errors
    of Monte Carlo noise plus ``tol``, the allowance for the sampler's discretization error.
    """
    from bench_plugins.scores import ExactScore
    from bench_plugins.targets import GaussianTarget

    who = f"sampler {_name(sampler)}"
    problem = conformance_problem("samplers", sampler)
    _require(problem is None, who, f"does not follow the Sampler protocol: {problem}",
             "set family = 'langevin' or 'diffusion' and define sample(score, x0, *, generator, callback)")
    with _default_dtype(torch.float64):
        target = GaussianTarget(dim, mean=1.0, std=1.0)
        score = ExactScore(target, None)
        x0 = torch.randn(n, dim, generator=_gen(seed + 1))
        try:
            inspect.signature(sampler.sample).bind(score, x0, generator=None, callback=None)
        except TypeError as exc:
            raise AssertionError(f"{who}: sample() does not accept (score, x0, generator=, callback=) "
                                 f"({exc}); use sample(self, score, x0, *, generator, callback=None)") from None
        copy = x0.clone()
        calls: list[tuple[Any, Any, Any]] = []
        out = sampler.sample(score, x0, generator=_gen(seed),
                             callback=lambda s, t, x: calls.append((s, t, x.shape if isinstance(x, Tensor) else x)))
        _require(torch.equal(x0, copy), who, "modified x0 in place", "start from x = x0.clone()")
        _check_tensor(out, who, "sample(...)", tuple(x0.shape), x0.dtype, x0.device,
                      "return particles in the dtype of x0")
        _require(calls, who, "never called callback", "call callback(step, t, x) after every step")
        for step, t, shape in calls:
            _require(isinstance(step, int) and not isinstance(step, bool), who,
                     f"callback got step {step!r} ({type(step).__name__}), not an int", "pass the step number")
            _require(isinstance(t, numbers.Real) and not isinstance(t, bool), who,
                     f"callback got t {t!r} ({type(t).__name__}), not a float", "pass t as a Python float")
            _require(shape == x0.shape, who, f"callback got x of shape {shape}, expected {tuple(x0.shape)}",
                     "pass the current particles, a tensor shaped like x0")
        again = sampler.sample(score, x0, generator=_gen(seed), callback=lambda s, t, x: None)
        _require(torch.equal(out, again), who, "is not deterministic: the same generator seed gave "
                 "different output", "draw every random number from the generator argument, never from "
                 "the global RNG (torch.randn(..., generator=generator))")
        mean, std = out.mean(0), out.std(0)
        mean_bound = tol + 5 * std / math.sqrt(n)
        std_bound = tol + 5 / math.sqrt(2 * (n - 1))
        worst = int(((mean - 1).abs() - mean_bound).argmax())
        _require(bool(((mean - 1).abs() <= mean_bound).all()), who,
                 f"with the exact score of N(1, I_{dim}) its samples have mean {mean[worst].item():.4g} in "
                 f"coordinate {worst} (allowed 1 +- {mean_bound[worst].item():.3g})",
                 "check the drift sign, step size and time grid (or raise tol for a coarse sampler)")
        worst = int(((std - 1).abs()).argmax())
        _require(bool(((std - 1).abs() <= std_bound).all()), who,
                 f"with the exact score of N(1, I_{dim}) its samples have std {std[worst].item():.4g} in "
                 f"coordinate {worst} (allowed 1 +- {std_bound:.3g})",
                 "check the noise scale (sqrt(2h) for Langevin) and the number of steps")


def _metric_ctx(dim: int, n: int, seed: int) -> tuple[Any, MetricContext, Tensor]:
    from bench_plugins.samplers import ULA
    from bench_plugins.scores import ExactScore
    from bench_plugins.targets import GaussianTarget

    target = GaussianTarget(dim, mean=1.0, std=1.0)
    train = target.sample(n, _gen(seed + 2))
    data = TrainingData(train, train, 1)
    ctx = MetricContext(target, target.sample(n, _gen(seed + 1)), ExactScore(target, data), data, ULA(),
                        _gen(seed), x0=torch.randn(n, dim, generator=_gen(seed + 3)))
    return target, ctx, target.sample(n, _gen(seed + 4))


def _finite_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def check_metric(metric: Any, *, dim: int = 2, n: int = 500, seed: int = 0) -> None:
    """Check a Metric on fresh samples of ``N(1, I_dim)`` against a reference sample.

    ``higher_is_better`` must be a bool; the value a finite float, or a non-empty dict of finite
    floats with str keys; the samples unchanged; the value identical for a context generator with
    the same seed. A metric that does not apply to a Gaussian target raises ``SkipMetric``, which
    propagates (``check_plugin`` reports it as skipped).
    """
    who = f"metric {_name(metric)}"
    problem = conformance_problem("metrics", metric)
    _require(problem is None, who, f"does not follow the Metric protocol: {problem}",
             "set higher_is_better and define __call__(self, samples, ctx)")
    _require(isinstance(metric.higher_is_better, bool), who,
             f"higher_is_better is {metric.higher_is_better!r}, not a bool", "set it to True or False")
    _, ctx, samples = _metric_ctx(dim, n, seed)
    copy = samples.clone()
    value = metric(samples, ctx)
    _require(torch.equal(samples, copy), who, "modified the samples in place", "work on a copy")
    if isinstance(value, dict):
        _require(value, who, "returned an empty dict", "return a float or a dict with at least one entry")
        bad = {k: v for k, v in value.items() if not (isinstance(k, str) and _finite_real(v))}
        _require(not bad, who, f"returned entries that are not str -> finite float: {bad!r}",
                 "return {name: float(value)} with finite values")
    else:
        _require(_finite_real(value), who, f"returned {value!r} ({type(value).__name__}), not a finite float",
                 "return float(value) (not a tensor), or a dict of floats")
    again = metric(samples, _metric_ctx(dim, n, seed)[1])
    _require(again == value, who, f"is not deterministic: {value!r} then {again!r} with the same seed",
             "draw every random number from ctx.generator")


def check_plugin(module: Any) -> list[tuple[str, str, str]]:
    """Build every component a plugin registers with default params and check it.

    The registry is built with ``build_registry(extra=[module], entry_points=False)``; a broken
    plugin raises ``PluginError`` there. Returns ``(kind, name, status)`` for each component:
    ``"ok"``, or ``"skipped: ..."`` when the factory needs params without defaults, when a
    metric raises ``SkipMetric`` on a Gaussian target, or for kinds without a check
    (executors, reporters). A failing check raises ``AssertionError`` naming the component.
    """
    from bench_plugins.targets import GaussianTarget

    from .plugin_manager import build_registry

    registry = build_registry(extra=[module], entry_points=False)
    plugin = getattr(module, "__name__", type(module).__name__)
    results: list[tuple[str, str, str]] = []
    for comp in registry.plugins[plugin].components:
        if comp.kind in ("executors", "reporters"):
            results.append((comp.kind, comp.name, f"skipped: no conformance check for {comp.kind}"))
            continue
        n_positional = 2 if comp.kind == "scores" else 0
        try:
            params = list(inspect.signature(comp.factory).parameters.values())[n_positional:]
        except (TypeError, ValueError):
            params = []
        needed = [p.name for p in params if p.default is p.empty
                  and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if needed:
            results.append((comp.kind, comp.name, f"skipped: factory needs params {', '.join(needed)}"))
            continue
        target = GaussianTarget(2, mean=1.0, std=1.0)
        train = target.sample(200, _gen(0))
        data = TrainingData(train, train, 1)
        try:
            obj = comp.factory(target, data) if comp.kind == "scores" else comp.factory()
            {"targets": lambda: check_target(obj), "scores": lambda: check_score(obj, target),
             "initializers": lambda: check_initializer(obj, target, data),
             "samplers": lambda: check_sampler(obj), "metrics": lambda: check_metric(obj)}[comp.kind]()
        except SkipMetric as exc:
            results.append((comp.kind, comp.name, f"skipped: metric does not apply to a Gaussian target ({exc})"))
            continue
        except (AssertionError, ValueError, TypeError) as exc:
            raise AssertionError(f"plugin '{plugin}', {SINGULAR[comp.kind]} '{comp.name}' (default params): "
                                 f"{type(exc).__name__ + ': ' if not isinstance(exc, AssertionError) else ''}"
                                 f"{exc}") from exc
        results.append((comp.kind, comp.name, "ok"))
    return results
