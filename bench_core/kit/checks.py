"""Conformance checks of targets, scores, initializers and metrics (samplers: :mod:`.sampler_check`).

Each ``check_*`` function returns None when the component conforms to its protocol in
:mod:`bench_core.components.protocols` and raises ``AssertionError`` otherwise, with a message
"<kind> <Class>: <what is wrong>; <fix>".

>>> from bench_core.kit import check_target
>>> check_target(MyTarget(dim=3))                     # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from bench_core.base.torch_defaults import default_dtype
from bench_core.components.protocols import MetricContext, TrainingData
from bench_core.kit.assertions import RNG_FIX, check_tensor, conform, finite_real, require, seeded

__all__ = ["check_target", "check_score", "check_initializer", "check_metric"]

# score vs autograd of log_prob: |difference| <= tol * (1 + |score|) elementwise, by input dtype
_GRAD_TOL = {torch.float32: 1e-3, torch.float64: 1e-6}


def _check_gradient(target: Any, x: Tensor, who: str) -> None:
    """score == autograd gradient of log_prob; skipped when log_prob does not track gradients."""
    for dtype, tol in _GRAD_TOL.items():
        for t in (0.0, 0.5):
            xg = x.detach().to(dtype).requires_grad_(True)
            lp = target.log_prob(xg, t)
            if not lp.requires_grad:
                return  # log_prob is computed outside autograd: nothing to compare with
            (grad,) = torch.autograd.grad(lp.sum(), xg)
            score = target.score(xg.detach(), t)
            err = ((score - grad).abs() / (1 + score.abs())).max().item()
            require(err <= tol, who, f"score(x, t={t}) is not the gradient of log_prob(x, t) in "
                     f"{dtype} (max relative difference {err:.3g} > {tol:g})",
                     "make score the exact grad_x log p_t (check its sign, scale and t dependence)")


def check_target(target: Any, *, n: int = 2000, seed: int = 0) -> None:
    """Check a Target: protocol, ``sample``, and its closed forms ``log_prob`` and ``score`` if it has them.

    ``sample`` (run under both default dtypes) must return a finite ``[n, dim]`` tensor in
    ``torch.get_default_dtype()`` on ``generator.device``, identical for equal seeds.
    ``log_prob`` ([n]) and ``score`` ([n, dim]) at t in (0, 0.5) must keep the dtype and device
    of float32 and float64 inputs and be finite. ``score`` must equal the autograd gradient of
    ``log_prob`` at 16 points (elementwise ``1e-6 (1 + |score|)`` in float64, ``1e-3 (...)`` in
    float32); skipped when ``log_prob``'s output does not require grad (computed outside autograd).
    A target that is only samples (a data set) has neither; one that has ``split(seed)`` must give
    disjoint-shaped ``[rows, dim]`` training and held-out rows, the same for the same seed.

    Parameters
    ----------
    target : Target
        The component under test.
    n, seed : int
        Number of exact samples and seed of their generator.
    """
    who = conform("targets", "Target", target, "give it an int attribute 'dim' and a method sample(n, generator)")
    d = target.dim
    for dtype in (torch.float32, torch.float64):
        with default_dtype(dtype):
            gen = seeded(seed)
            x = target.sample(n, gen)
            check_tensor(x, who, f"sample({n}, generator) under default dtype {dtype}", (n, d), dtype,
                          gen.device, "draw with dtype=torch.get_default_dtype() (the suite's dtype)")
            require(torch.equal(x, target.sample(n, seeded(seed))), who, "sample() is not deterministic: "
                     "two generators with the same seed gave different draws", RNG_FIX)
    closed_forms = [(m, s) for m, s in (("log_prob", (n,)), ("score", (n, d))) if callable(getattr(target, m, None))]
    for dtype in (torch.float32, torch.float64):
        for t in (0.0, 0.5):
            for method, shape in closed_forms:
                out = getattr(target, method)(x.to(dtype), t)
                check_tensor(out, who, f"{method}(x, t={t}) for {dtype} x", shape, dtype, x.device,
                              "compute in the dtype of x (e.g. constant.to(x))")
    if len(closed_forms) == 2:
        _check_gradient(target, x[:16], who)
    if callable(getattr(target, "split", None)):
        _check_split(target, seed, who)


def _check_split(target: Any, seed: int, who: str) -> None:
    """``split(seed)``: training and held-out rows ``[*, dim]``, finite, the same twice for one seed."""
    train, heldout = target.split(seed)
    for name, rows in (("training", train), ("held-out", heldout)):
        require(isinstance(rows, Tensor) and rows.ndim == 2 and rows.shape[1] == target.dim and rows.shape[0] >= 1,
                who, f"split({seed}) gave {name} rows that are not a non-empty [rows, {target.dim}] tensor",
                "return (training rows, held-out rows), each [rows, dim]")
        require(bool(torch.isfinite(rows).all()), who, f"split({seed}) has non-finite {name} rows",
                "refuse rows with NaN or inf when the data is read")
    again = target.split(seed)
    require(torch.equal(train, again[0]) and torch.equal(heldout, again[1]), who,
            f"split({seed}) is not deterministic", "derive the split's permutation from the seed alone")


def check_score(score: Any, target: Any, *, n: int = 256, seed: int = 0) -> None:
    """Check a ScoreEstimate on points drawn from ``target``.

    For float32 and float64 ``x`` and t in (0, 0.5), ``score(x, t)`` must be a finite
    ``[n, dim]`` tensor with the dtype and device of ``x``, leave ``x`` unchanged and give the
    same value twice. If the score has ``region``, ``region(x)`` must be a bool tensor [n]. If it
    declares ``rowwise = True``, evaluating the rows in two parts must give the whole evaluation
    (to rounding: a network's matrix products may round differently for another number of rows).

    Parameters
    ----------
    score : ScoreEstimate
        The component under test, built for ``target``.
    target : Target
        Supplies the evaluation points; ``n, seed`` : their number and the generator's seed.
    """
    who = conform("scores", "ScoreEstimate", score, "define __call__(self, x, t)")
    x = target.sample(n, seeded(seed))
    for dtype in (torch.float32, torch.float64):
        xd = x.to(dtype)
        copy = xd.clone()
        for t in (0.0, 0.5):
            out = score(xd, t)
            check_tensor(out, who, f"score(x, t={t}) for {dtype} x", (n, target.dim), dtype, xd.device,
                          "compute in the dtype and on the device of x (e.g. constant.to(x))")
            require(torch.equal(xd, copy), who, "modified its input x in place",
                     "work on a copy (x.clone()) or use out-of-place operations")
            require(torch.equal(out, score(xd, t)), who, f"score(x, t={t}) is not deterministic",
                     "a score estimate must be a fixed function of (x, t)")
            if getattr(score, "rowwise", False):
                _check_rowwise(score, xd, t, out, who)
        if hasattr(score, "region"):
            check_tensor(score.region(xd), who, f"region(x) for {dtype} x", (n,), torch.bool, xd.device,
                          "return a bool tensor, one entry per particle (e.g. norms <= radius)")


# rows scored in parts vs all at once: |difference| <= tol * (1 + |score|); elementwise code is exact,
# matrix products may change their blocking (and so their rounding) with the number of rows
_ROWWISE_TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def _check_rowwise(score: Any, x: Tensor, t: float, whole: Tensor, who: str) -> None:
    """A ``rowwise`` score must give each row's value from that row alone."""
    cut = max(1, x.shape[0] // 3)
    parts = torch.cat([score(x[:cut], t), score(x[cut:], t)])
    worst = float(((parts - whole).abs() / (1 + whole.abs())).max())
    require(worst <= _ROWWISE_TOL[x.dtype], who,
             f"declares rowwise = True but score(x, t={t}) evaluated on rows [0, {cut}) and [{cut}, n) "
             f"differs from one evaluation by {worst:.3g} (relative)",
             "remove rowwise (samplers then evaluate all rows at once) or make each row's score depend on "
             "that row alone")


def check_initializer(initializer: Any, target: Any, data: TrainingData, *, n: int = 500,
                      seed: int = 0) -> None:
    """Check an Initializer: a finite ``[n, dim]`` tensor in the default dtype on the generator's
    device, identical for two generators with the same seed.

    Parameters
    ----------
    initializer : Initializer
        The component under test.
    target, data : Target, TrainingData
        Passed as given (build ``data`` in the current default dtype).
    n, seed : int
        Number of points and seed of the generator.
    """
    who = conform("initializers", "Initializer", initializer,
                   "define __call__(self, n, *, target, data, generator)")
    gen = seeded(seed)
    x = initializer(n, target=target, data=data, generator=gen)
    check_tensor(x, who, f"initializer({n}, ...)", (n, target.dim), torch.get_default_dtype(),
                  gen.device, "return dtype=torch.get_default_dtype() (the suite's dtype)")
    again = initializer(n, target=target, data=data, generator=seeded(seed))
    require(torch.equal(x, again), who, "is not deterministic: two generators with the same seed gave "
             "different points", RNG_FIX)


def _metric_inputs(dim: int, n: int, seed: int) -> tuple[Tensor, MetricContext]:
    from bench_plugins.samplers.langevin import ULA
    from bench_plugins.scores.exact import ExactScore
    from bench_plugins.targets.gaussian import GaussianTarget

    target = GaussianTarget(dim, mean=1.0, std=1.0)
    train = target.sample(n, seeded(seed + 2))
    data = TrainingData(train, train, 1)
    ctx = MetricContext(target, target.sample(n, seeded(seed + 1)), ExactScore(target, data), data, ULA(),
                        seeded(seed), x0=torch.randn(n, dim, generator=seeded(seed + 3)))
    return target.sample(n, seeded(seed + 4)), ctx


def check_metric(metric: Any, *, dim: int = 2, n: int = 500, seed: int = 0) -> None:
    """Check a Metric on fresh samples of ``N(1, I_dim)`` against a reference sample.

    ``higher_is_better`` must be a bool; the value a finite float or a non-empty dict of finite
    floats with str keys, exactly the ``keys`` the metric declares if it declares them; the samples
    unchanged; the value identical for a context generator
    with the same seed. ``SkipMetric`` (metric not applicable to a Gaussian) propagates.

    Parameters
    ----------
    metric : Metric
        The component under test.
    dim, n, seed : int
        Dimension, sample sizes, seed of ``ctx.generator``.
    """
    who = conform("metrics", "Metric", metric,
                   "set higher_is_better and define __call__(self, samples, ctx)")
    require(isinstance(metric.higher_is_better, bool), who,
             f"higher_is_better is {metric.higher_is_better!r}, not a bool", "set it to True or False")
    samples, ctx = _metric_inputs(dim, n, seed)
    copy = samples.clone()
    value = metric(samples, ctx)
    require(torch.equal(samples, copy), who, "modified the samples in place", "work on a copy")
    if isinstance(value, dict):
        bad = {k: v for k, v in value.items() if not (isinstance(k, str) and finite_real(v))}
        require(value and not bad, who, f"returned a dict with entries that are not str -> finite "
                 f"float: {bad or value!r}", "return a non-empty {name: float(value)}")
    else:
        require(finite_real(value), who, f"returned {value!r} ({type(value).__name__}), not a finite "
                 "float", "return float(value) (not a tensor), or a dict of floats")
    declared = getattr(metric, "keys", None)
    if declared is not None:  # the keys bench check validates claims against must be the ones returned
        returned = tuple(value) if isinstance(value, dict) else ()
        require(set(returned) == set(declared), who, f"declares keys {tuple(declared)!r} but returned "
                 f"{returned!r}", "make `keys` list exactly the dict keys __call__ returns (() for a float)")
    again = metric(samples, _metric_inputs(dim, n, seed)[1])
    require(again == value, who, f"is not deterministic: {value!r} then {again!r} with the same seed",
             "draw every random number from ctx.generator")


