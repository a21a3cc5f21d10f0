"""Conformance kit for plugin authors: call these checks from your own test suite.

Each ``check_*`` function returns None when the component conforms to its protocol in
:mod:`bench_core.components.protocols` and raises ``AssertionError`` otherwise, with a message
"<kind> <Class>: <what is wrong>; <fix>".

>>> from bench_core.kit.checks import check_plugin, check_sampler
>>> check_sampler(MySampler(step_size=0.01))          # doctest: +SKIP
>>> check_plugin(my_plugin_module)                    # doctest: +SKIP
[('samplers', 'my_sampler', 'ok')]
"""
from __future__ import annotations

import inspect
import json
import math
import numbers
from statistics import NormalDist
from typing import Any, Optional

import torch
from torch import Tensor

from bench_core.base.errors import SkipMetric
from bench_core.base.torch_defaults import default_dtype
from bench_core.components.hookspecs import PROJECT
from bench_core.components.protocols import MetricContext, TrainingData, conformance_problem
from bench_core.components.registry import SINGULAR

__all__ = ["check_target", "check_score", "check_initializer", "check_sampler", "check_metric",
           "check_plugin", "plugin_registry", "sampler_margins", "sampler_targets"]

# score vs autograd of log_prob: |difference| <= tol * (1 + |score|) elementwise, by input dtype
_GRAD_TOL = {torch.float32: 1e-3, torch.float64: 1e-6}
_RNG_FIX = "draw every random number from the generator argument, never from the global RNG"


def _require(ok: Any, who: str, problem: str, fix: str) -> None:
    if not ok:
        raise AssertionError(f"{who}: {problem}; {fix}")


def _conform(kind: str, protocol: str, obj: Any, fix: str) -> str:
    """Assert that ``obj`` follows the protocol of ``kind``; return how messages name it."""
    who = f"{SINGULAR[kind]} {type(obj).__name__}"
    problem = conformance_problem(kind, obj)
    _require(problem is None, who, f"does not follow the {protocol} protocol: {problem}", fix)
    return who


def _finite_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _check_tensor(out: Any, who: str, what: str, shape: tuple[int, ...], dtype: torch.dtype,
                  device: torch.device, fix_dtype: str) -> None:
    """Type, shape, dtype, device and (for non-bool tensors) finiteness of one output."""
    _require(isinstance(out, Tensor), who, f"{what} returned {type(out).__name__}, not a Tensor",
             "return a torch.Tensor")
    _require(tuple(out.shape) == shape, who, f"{what} has shape {list(out.shape)}, expected "
             f"{list(shape)}", "return one row per particle ([n, d]) or one value per particle ([n])")
    _require(out.dtype == dtype, who, f"{what} has dtype {out.dtype}, expected {dtype}", fix_dtype)
    _require(out.device == device, who, f"{what} is on {out.device}, expected {device}",
             "create tensors on the device of the input (or of the generator)")
    _require(out.dtype == torch.bool or bool(torch.isfinite(out).all()), who,
             f"{what} has non-finite values", "return finite values for finite inputs")


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
            _require(err <= tol, who, f"score(x, t={t}) is not the gradient of log_prob(x, t) in "
                     f"{dtype} (max relative difference {err:.3g} > {tol:g})",
                     "make score the exact grad_x log p_t (check its sign, scale and t dependence)")


def check_target(target: Any, *, n: int = 2000, seed: int = 0) -> None:
    """Check a Target: protocol, ``sample``, ``log_prob`` and ``score``.

    ``sample`` (run under both default dtypes) must return a finite ``[n, dim]`` tensor in
    ``torch.get_default_dtype()`` on ``generator.device``, identical for equal seeds.
    ``log_prob`` ([n]) and ``score`` ([n, dim]) at t in (0, 0.5) must keep the dtype and device
    of float32 and float64 inputs and be finite. ``score`` must equal the autograd gradient of
    ``log_prob`` at 16 points (elementwise ``1e-6 (1 + |score|)`` in float64, ``1e-3 (...)`` in
    float32); skipped when ``log_prob``'s output does not require grad (computed outside autograd).

    Parameters
    ----------
    target : Target
        The component under test.
    n, seed : int
        Number of exact samples and seed of their generator.
    """
    who = _conform("targets", "Target", target,
                   "give it an int attribute 'dim' and methods sample, log_prob, score")
    d = target.dim
    for dtype in (torch.float32, torch.float64):
        with default_dtype(dtype):
            gen = _gen(seed)
            x = target.sample(n, gen)
            _check_tensor(x, who, f"sample({n}, generator) under default dtype {dtype}", (n, d), dtype,
                          gen.device, "draw with dtype=torch.get_default_dtype() (the suite's dtype)")
            _require(torch.equal(x, target.sample(n, _gen(seed))), who, "sample() is not deterministic: "
                     "two generators with the same seed gave different draws", _RNG_FIX)
    for dtype in (torch.float32, torch.float64):
        for t in (0.0, 0.5):
            for method, shape in (("log_prob", (n,)), ("score", (n, d))):
                out = getattr(target, method)(x.to(dtype), t)
                _check_tensor(out, who, f"{method}(x, t={t}) for {dtype} x", shape, dtype, x.device,
                              "compute in the dtype of x (e.g. constant.to(x))")
    _check_gradient(target, x[:16], who)


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
    who = _conform("scores", "ScoreEstimate", score, "define __call__(self, x, t)")
    x = target.sample(n, _gen(seed))
    for dtype in (torch.float32, torch.float64):
        xd = x.to(dtype)
        copy = xd.clone()
        for t in (0.0, 0.5):
            out = score(xd, t)
            _check_tensor(out, who, f"score(x, t={t}) for {dtype} x", (n, target.dim), dtype, xd.device,
                          "compute in the dtype and on the device of x (e.g. constant.to(x))")
            _require(torch.equal(xd, copy), who, "modified its input x in place",
                     "work on a copy (x.clone()) or use out-of-place operations")
            _require(torch.equal(out, score(xd, t)), who, f"score(x, t={t}) is not deterministic",
                     "a score estimate must be a fixed function of (x, t)")
            if getattr(score, "rowwise", False):
                _check_rowwise(score, xd, t, out, who)
        if hasattr(score, "region"):
            _check_tensor(score.region(xd), who, f"region(x) for {dtype} x", (n,), torch.bool, xd.device,
                          "return a bool tensor, one entry per particle (e.g. norms <= radius)")


# rows scored in parts vs all at once: |difference| <= tol * (1 + |score|); elementwise code is exact,
# matrix products may change their blocking (and so their rounding) with the number of rows
_ROWWISE_TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def _check_rowwise(score: Any, x: Tensor, t: float, whole: Tensor, who: str) -> None:
    """A ``rowwise`` score must give each row's value from that row alone."""
    cut = max(1, x.shape[0] // 3)
    parts = torch.cat([score(x[:cut], t), score(x[cut:], t)])
    worst = float(((parts - whole).abs() / (1 + whole.abs())).max())
    _require(worst <= _ROWWISE_TOL[x.dtype], who,
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
    who = _conform("initializers", "Initializer", initializer,
                   "define __call__(self, n, *, target, data, generator)")
    gen = _gen(seed)
    x = initializer(n, target=target, data=data, generator=gen)
    _check_tensor(x, who, f"initializer({n}, ...)", (n, target.dim), torch.get_default_dtype(),
                  gen.device, "return dtype=torch.get_default_dtype() (the suite's dtype)")
    again = initializer(n, target=target, data=data, generator=_gen(seed))
    _require(torch.equal(x, again), who, "is not deterministic: two generators with the same seed gave "
             "different points", _RNG_FIX)


# ----------------------------------------------------------------- check_sampler
#
# Why these margins. A correct sampler run with the exact score of a Gaussian N(m, diag(s^2)) returns
# n independent particles whose law is the target up to the sampler's own bias. Per coordinate, the
# sample mean then has sd s / sqrt(n) and the sample variance S^2 of n Gaussian draws has
# (n - 1) S^2 / s^2 ~ chi^2_{n-1}, so S^2 / s^2 - 1 has sd sqrt(2 / (n - 1)); averaged over the d
# independent coordinates of one target, sd sqrt(2 / (d (n - 1))). Each check allows z of its standard
# errors (the Monte Carlo margin) plus the bias the author states. z is a Bonferroni bound: with K checks
# in all, z = Phi^{-1}(1 - alpha / (2 K)), so a correct, unbiased sampler fails any of them with
# probability <= alpha (normal approximation of the chi-square, whose skew sqrt(8 / (n - 1)) = 0.045 at
# n = 4000 makes its upper tail at z ~ 4.6 about twice the normal one: still ~1e-4 in all).
_FAMILY_ALPHA = 1e-4
# the default allowance covers ULA's stationary variance error h / (2 s^2 - h) up to h = 0.014 on the
# narrowest target (s = 0.6), and the measured error of every built-in sampler at its defaults but ddim's
_DEFAULT_BIAS = 0.02


def sampler_targets(dim: int = 4) -> list[tuple[str, str, Any]]:
    """The Gaussians :func:`check_sampler` runs a sampler on: ``[(formula, kind, target)]``.

    ``N(1, 0.7^2 I)`` ("shifted"), ``N(-0.5, 0.6^2 I)`` ("narrower, shifted the other way") and
    ``N(m, diag(s^2))`` ("anisotropic": ``s`` evenly spaced from 0.6 to 0.8, ``m_j = +-(1 .. 0.5)`` with
    alternating signs, the largest offsets on the narrowest coordinates). Each is a
    :class:`~bench_plugins.targets.gaussian.GaussianTarget`, whose exact score at OU time t is that of
    ``N(e^{-t} m, diag(e^{-2t} s^2 + 1 - e^{-2t}))``. Every target is narrower than the ``N(0, I)`` start:
    Langevin dynamics contracts toward ``N(m, s^2)`` at rate ``1 / s^2 >= 1.56`` per unit time, so ULA's
    default horizon (T = 2.5) leaves at most ``(|m| / s) e^{-T / s^2} = 0.013`` target std of the mean gap.
    Use them to compute your sampler's bias in closed form (see ``bias`` in :func:`check_sampler`).
    """
    from bench_plugins.targets.gaussian import GaussianTarget

    offsets = torch.linspace(1.0, 0.5, dim, dtype=torch.float64)
    signs = torch.tensor([(-1.0) ** j for j in range(dim)], dtype=torch.float64)
    stds = torch.linspace(0.6, 0.8, dim, dtype=torch.float64)
    return [(f"N(1, 0.7^2 I_{dim})", "shifted", GaussianTarget(dim, mean=1.0, std=0.7)),
            (f"N(-0.5, 0.6^2 I_{dim})", "narrower, shifted the other way", GaussianTarget(dim, mean=-0.5, std=0.6)),
            ("N(m, diag(s^2)), s = 0.6 .. 0.8", "anisotropic",
             GaussianTarget(dim, mean=(signs * offsets).tolist(), std=stds.tolist()))]


def sampler_margins(dim: int = 4, n: int = 4000) -> dict[str, float]:
    """The Monte Carlo margins of :func:`check_sampler` (before ``bias`` is added).

    Returns
    -------
    dict
        ``z`` (standard errors allowed per check), ``mean`` (in target std per coordinate),
        ``variance`` (relative, per coordinate) and ``pooled_variance`` (relative, averaged over the
        ``dim`` coordinates of one target). At ``dim = 4, n = 4000``: 27 checks, z = 4.63, margins
        0.073, 0.103 and 0.052.
    """
    checks = len(sampler_targets(1)) * (2 * dim + 1)  # per target: d means, d variances, 1 pooled variance
    z = NormalDist().inv_cdf(1.0 - _FAMILY_ALPHA / (2 * checks))
    var_se = math.sqrt(2.0 / (n - 1))
    return {"z": z, "mean": z / math.sqrt(n), "variance": z * var_se, "pooled_variance": z * var_se / math.sqrt(dim)}


def _sample_checked(sampler: Any, score: Any, x0: Tensor, seed: int, who: str) -> Tensor:
    """One run: x0 unchanged, output like x0 and finite, callback called with (int, float, x-shaped)."""
    copy = x0.clone()
    calls: list[tuple[Any, Any, Any]] = []  # (step, t, shape of x): keep no tensors alive
    out = sampler.sample(score, x0, generator=_gen(seed), callback=lambda step, t, x: calls.append(
        (step, t, tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__)))
    _require(torch.equal(x0, copy), who, "modified x0 in place", "start from x = x0.clone()")
    _check_tensor(out, who, "sample(...)", tuple(x0.shape), x0.dtype, x0.device,
                  "return particles in the dtype of x0")
    _require(calls, who, "never called callback", "call callback(step, t, x) after every step")
    for step, t, shape in calls:
        _require(isinstance(step, int) and not isinstance(step, bool), who, f"callback got step "
                 f"{step!r} ({type(step).__name__}), not an int", "pass the step number")
        _require(_finite_real(t), who, f"callback got t {t!r} ({type(t).__name__}), not a float",
                 "pass t as a Python float")
        _require(shape == tuple(x0.shape), who, f"callback got x = {shape}, expected shape "
                 f"{tuple(x0.shape)}", "pass the current particles, a tensor shaped like x0")
    return out


_MEAN_FIX = "check the drift sign, step size, time grid and horizon"
_VARIANCE_FIX = "check the noise scale (sqrt(2h) for Langevin) and the number of steps"


def check_sampler(sampler: Any, *, dim: int = 4, n: int = 4000, seed: int = 0,
                  bias: float = _DEFAULT_BIAS) -> None:
    """Check a Sampler: protocol, shapes, callback, determinism and where it lands.

    In float64, the sampler runs with the exact score of each of the three Gaussians of
    :func:`sampler_targets` (shifted; narrower and shifted the other way; anisotropic), from ``x0 ~ N(0, I)``
    (a Langevin sampler starts there; a diffusion sampler takes it as its prior draw). Required: output shaped
    like ``x0``, finite, in its dtype; ``x0`` unchanged; ``callback(step: int, t: float, x shaped like x0)``
    called at least once; identical output for the same generator seed; and the first two moments of every
    coordinate within their margin of the target's:

    - mean: ``|mean_j - m_j| <= (z / sqrt(n) + bias) s_j``;
    - variance: ``|var_j / s_j^2 - 1| <= z sqrt(2 / (n - 1)) + bias``;
    - variance averaged over a target's coordinates: ``|mean_j (var_j / s_j^2) - 1| <= z sqrt(2 / (d (n - 1)))
      + bias`` (a wrong noise scale shifts every coordinate alike).

    The Monte Carlo margins are z standard errors: the sample mean of n draws has sd ``s / sqrt(n)``, the
    sample variance of n Gaussian draws has relative sd ``sqrt(2 / (n - 1))``, and z is the Bonferroni bound
    over all ``3 (2 d + 1)`` checks for a family-wise false-failure probability of 1e-4 (normal
    approximation): at ``dim = 4, n = 4000``, z = 4.63 and the margins are 0.073 target std (mean), 0.103
    (variance) and 0.052 (averaged variance); :func:`sampler_margins` computes them. A sampler whose
    variance is 1.21x the target's (a BAOAB kicking with sqrt(2 gamma h) instead of
    sqrt(1 - e^{-2 gamma h}) at gamma h = 0.2, or a ULA with noise sqrt(1.21 * 2h)) fails.

    Parameters
    ----------
    sampler : Sampler
        The component under test.
    dim, n, seed : int
        Dimension (>= 1), number of particles (>= 2), seed of the generators (target k uses ``seed + 2k``
        for the sampler and ``seed + 2k + 1`` for ``x0``).
    bias : float, default 0.02
        The sampler's own error at its settings, as its author states it, added to every margin: the largest
        of ``|mean error| / s`` and ``|relative variance error|`` over the coordinates of the three targets
        (discretization bias, and what its horizon leaves of the N(0, I) start). The default covers ULA's
        stationary variance ``s^2 / (1 - h / (2 s^2))``, a relative error ``h / (2 s^2 - h)`` (0.0035 at its
        default h = 0.0025 on the narrowest target, s = 0.6; 0.014 at h = 0.01), and every built-in at its
        defaults except ``ddim`` (its 100 deterministic steps shrink the variance by up to 4.9%: state
        ``bias=0.05``). A sampler that is linear in its input for a Gaussian score gets its bias in closed
        form from :func:`sampler_targets`.

    Raises
    ------
    AssertionError
        Naming the defect and a fix; for a moment, which target, coordinate and moment, by how much, and
        against what margin.
    ValueError
        When ``bias`` is not a finite number >= 0, ``dim < 1`` or ``n < 2``.
    """
    from bench_plugins.scores.exact import ExactScore

    if not (_finite_real(bias) and bias >= 0):
        raise ValueError(f"parameter 'bias' must be a finite number >= 0, got {bias!r}")
    if not (isinstance(dim, int) and dim >= 1 and isinstance(n, int) and n >= 2):
        raise ValueError(f"check_sampler needs dim >= 1 and n >= 2, got dim={dim!r}, n={n!r}")
    who = _conform("samplers", "Sampler", sampler, "set family = 'langevin' or 'diffusion' and define "
                   "sample(score, x0, *, generator, callback)")
    margins = sampler_margins(dim, n)
    targets = sampler_targets(dim)
    failures: list[tuple[int, float, str, str]] = []  # (pooled?, excess ratio, message, fix)
    with default_dtype(torch.float64):
        for k, (formula, kind, target) in enumerate(targets):
            score = ExactScore(target, None)
            x0 = torch.randn(n, dim, generator=_gen(seed + 2 * k + 1))
            out = _sample_checked(sampler, score, x0, seed + 2 * k, who)
            if k == 0:
                again = sampler.sample(score, x0, generator=_gen(seed), callback=lambda step, t, x: None)
                _require(torch.equal(out, again), who, "is not deterministic: the same generator seed gave "
                         "different output", f"{_RNG_FIX} (torch.randn(..., generator=generator))")
            where = f"with the exact score of {formula} (target {k + 1} of {len(targets)}: {kind})"
            mean, var = out.mean(0), out.var(0)
            mean_err = (mean - target.mean) / target.std  # in units of the target's std
            var_err = var / target.std**2 - 1.0            # relative
            allowed = margins["mean"] + bias
            for j in range(dim):
                if abs(mean_err[j]) > allowed:
                    failures.append((0, float(abs(mean_err[j])) / allowed,
                                     f"{where} the mean of coordinate {j} is {mean[j]:.4g}, not {target.mean[j]:.4g} "
                                     f"(error {mean_err[j]:+.3f} target std, allowed +-{allowed:.3f} = MC margin "
                                     f"{margins['mean']:.3f} + bias {bias:g})", _MEAN_FIX))
            allowed = margins["variance"] + bias
            for j in range(dim):
                if abs(var_err[j]) > allowed:
                    failures.append((0, float(abs(var_err[j])) / allowed,
                                     f"{where} the variance of coordinate {j} is {1 + var_err[j]:.3f}x the "
                                     f"target's {target.std[j] ** 2:.4g} (relative error {var_err[j]:+.3f}, allowed "
                                     f"+-{allowed:.3f} = MC margin {margins['variance']:.3f} + bias {bias:g})",
                                     _VARIANCE_FIX))
            pooled, allowed = float(var_err.mean()), margins["pooled_variance"] + bias
            if abs(pooled) > allowed:
                failures.append((1, abs(pooled) / allowed,
                                 f"{where} the variance averaged over its {dim} coordinates is {1 + pooled:.3f}x "
                                 f"the target's (relative error {pooled:+.3f}, allowed +-{allowed:.3f} = MC margin "
                                 f"{margins['pooled_variance']:.3f} + bias {bias:g})", _VARIANCE_FIX))
    if failures:
        # a coordinate's own failure first (it names the coordinate), then the worst excess over its margin
        _, _, problem, fix = min(failures, key=lambda f: (f[0], -f[1]))
        checks = len(targets) * (2 * dim + 1)
        raise AssertionError(f"{who}: {problem} [{len(failures)} of {checks} moment checks fail]; {fix} "
                             f"(or state your sampler's own bias with check_sampler(..., bias=...))")


def _metric_inputs(dim: int, n: int, seed: int) -> tuple[Tensor, MetricContext]:
    from bench_plugins.samplers.langevin import ULA
    from bench_plugins.scores.exact import ExactScore
    from bench_plugins.targets.gaussian import GaussianTarget

    target = GaussianTarget(dim, mean=1.0, std=1.0)
    train = target.sample(n, _gen(seed + 2))
    data = TrainingData(train, train, 1)
    ctx = MetricContext(target, target.sample(n, _gen(seed + 1)), ExactScore(target, data), data, ULA(),
                        _gen(seed), x0=torch.randn(n, dim, generator=_gen(seed + 3)))
    return target.sample(n, _gen(seed + 4)), ctx


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
    who = _conform("metrics", "Metric", metric,
                   "set higher_is_better and define __call__(self, samples, ctx)")
    _require(isinstance(metric.higher_is_better, bool), who,
             f"higher_is_better is {metric.higher_is_better!r}, not a bool", "set it to True or False")
    samples, ctx = _metric_inputs(dim, n, seed)
    copy = samples.clone()
    value = metric(samples, ctx)
    _require(torch.equal(samples, copy), who, "modified the samples in place", "work on a copy")
    if isinstance(value, dict):
        bad = {k: v for k, v in value.items() if not (isinstance(k, str) and _finite_real(v))}
        _require(value and not bad, who, f"returned a dict with entries that are not str -> finite "
                 f"float: {bad or value!r}", "return a non-empty {name: float(value)}")
    else:
        _require(_finite_real(value), who, f"returned {value!r} ({type(value).__name__}), not a finite "
                 "float", "return float(value) (not a tensor), or a dict of floats")
    declared = getattr(metric, "keys", None)
    if declared is not None:  # the keys bench check validates claims against must be the ones returned
        returned = tuple(value) if isinstance(value, dict) else ()
        _require(set(returned) == set(declared), who, f"declares keys {tuple(declared)!r} but returned "
                 f"{returned!r}", "make `keys` list exactly the dict keys __call__ returns (() for a float)")
    again = metric(samples, _metric_inputs(dim, n, seed)[1])
    _require(again == value, who, f"is not deterministic: {value!r} then {again!r} with the same seed",
             "draw every random number from ctx.generator")


def plugin_registry(module: Any) -> Any:
    """The registry of the built-in components and those ``module`` registers, whether or not it is
    installed (other installed plugins are left out): pass it to ``run_suite(..., registry=...)``."""
    from bench_core.components.discovery import build_registry

    return build_registry(extra=[module], entry_points=False)


def check_plugin(module: Any, *, sampler_bias: float = _DEFAULT_BIAS) -> list[tuple[str, str, str]]:
    """Build every component a plugin registers, with default params, and check it.

    Parameters
    ----------
    module : module or object
        The plugin: an object with ``@hookimpl register_*`` functions.
    sampler_bias : float, default 0.02
        ``bias`` passed to :func:`check_sampler` for its samplers: their stated error at default params.

    Returns
    -------
    list of (kind, name, status)
        status is ``"ok"`` or ``"skipped: <why>"``: the factory needs params without defaults,
        the metric raised ``SkipMetric`` on a Gaussian target, or the kind (executors,
        reporters) has no check.

    Raises
    ------
    PluginError
        From ``build_registry(extra=[module], entry_points=False)`` for a broken plugin.
    AssertionError
        When the plugin registers nothing (naming functions that lack ``@hookimpl``), or a component
        fails its check (or its factory raises with default params).
    """
    from bench_plugins.targets.gaussian import GaussianTarget

    from bench_core.components.discovery import build_registry

    registry = build_registry(extra=[module], entry_points=False)
    plugin = getattr(module, "__name__", type(module).__name__)
    target = GaussianTarget(2, mean=1.0, std=1.0)
    train = target.sample(200, _gen(0))
    data = TrainingData(train, train, 1)
    checks = {"targets": check_target, "scores": lambda obj: check_score(obj, target),
              "initializers": lambda obj: check_initializer(obj, target, data),
              "samplers": lambda obj: check_sampler(obj, bias=sampler_bias), "metrics": check_metric}
    components = registry.plugins[plugin].components
    if not components:
        # the usual cause: register_* functions without @hookimpl, which pluggy never calls
        unmarked = sorted(name for name in dir(module) if name.startswith("register_")
                          and callable(getattr(module, name)) and not hasattr(getattr(module, name), f"{PROJECT}_impl"))
        cause = (f"its {', '.join(unmarked)} lack @hookimpl (from bench_core import hookimpl)" if unmarked else
                 "it defines no @hookimpl register_<kind>(register) function, or they never call register(...)")
        raise AssertionError(f"plugin {plugin}: registers no component; {cause}")
    results: list[tuple[str, str, str]] = []
    for comp in components:
        args = (target, data) if comp.kind == "scores" else ()
        try:
            params = list(inspect.signature(comp.factory).parameters.values())[len(args):]
        except (TypeError, ValueError):  # no introspectable signature: just call it
            params = []
        needed = [p.name for p in params
                  if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        status = "ok"
        if comp.kind not in checks:
            status = f"skipped: no conformance check for {comp.kind}"
        elif needed:
            status = f"skipped: factory needs params {', '.join(needed)}"
        else:
            try:
                checks[comp.kind](comp.factory(*args))
            except SkipMetric as exc:
                status = f"skipped: does not apply to a Gaussian target ({exc})"
            except (AssertionError, ValueError, TypeError) as exc:
                why = str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
                raise AssertionError(f"plugin '{plugin}', {SINGULAR[comp.kind]} '{comp.name}' built "
                                     f"with default params: {why}") from exc
        results.append((comp.kind, comp.name, status))
    return results


def gaussian_problem(dim: int = 2, mean: float = 1.0, n_train: int = 200, seed: int = 0) -> tuple[Any, Any, TrainingData]:
    """``(target, exact_score, data)``: N(mean * 1, I_dim), its exact score at every t, and ``n_train``
    exact draws as the training set (the problem the kit's score, initializer and metric checks run on;
    :func:`check_sampler` runs on :func:`sampler_targets`)."""
    from bench_plugins.scores.exact import ExactScore
    from bench_plugins.targets.gaussian import GaussianTarget

    target = GaussianTarget(dim, mean=mean, std=1.0)
    train = target.sample(n_train, _gen(seed))
    data = TrainingData(train, train, 1)
    return target, ExactScore(target, data), data


_TINY_ROLES = ("targets", "scores", "initializers", "samplers", "metrics")


def tiny_suite(kind: str, name: str, params: Optional[dict] = None) -> str:
    """TOML text of a small suite (2 seeds, 500 particles, d = 2) that uses component ``name`` of
    ``kind`` ("targets", "scores", "initializers", "samplers", "metrics") with ``params`` (numbers,
    strings, lists), and built-ins for the rest: gaussian N(1, I_2), the exact score, N(0, I) starts, ULA, mean_error."""
    if kind not in _TINY_ROLES:
        raise ValueError(f"kind must be one of {', '.join(_TINY_ROLES)}, got {kind!r}")
    defaults = {"targets": ("gaussian", {"dim": 2, "mean": 1.0}), "scores": ("exact", {}),
                "initializers": ("standard_normal", {}), "samplers": ("ula", {"step_size": 0.01, "n_steps": 300}),
                "metrics": ("mean_error" if kind != "targets" else "energy", {})}
    defaults[kind] = (name, params or {})
    parts = ['[suite]\nname = "tiny"\nseeds = [0, 1]\nn_samples = 500\ndevice = "cpu"\n']
    for table, (component, values) in defaults.items():
        inline = ", ".join(f"{k} = {json.dumps(v)}" for k, v in values.items())
        parts.append(f'[[{table}]]\nname = "{component}"\n' + (f"params = {{ {inline} }}\n" if inline else ""))
    return "\n".join(parts)
