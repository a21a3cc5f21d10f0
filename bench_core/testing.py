"""Conformance kit for plugin authors: call these checks from your own test suite.

Each ``check_*`` function returns None when the component conforms to DESIGN section 4 and
raises ``AssertionError`` otherwise, with a message "<kind> <Class>: <what is wrong>; <fix>".

>>> from bench_core.testing import check_plugin, check_sampler
>>> check_sampler(MySampler(step_size=0.01))          # doctest: +SKIP
>>> check_plugin(my_plugin_module)                    # doctest: +SKIP
[('samplers', 'my_sampler', 'ok')]
"""
from __future__ import annotations

import inspect
import json
import math
import numbers
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import torch
from torch import Tensor

from .errors import SkipMetric
from .hookspecs import PROJECT
from .protocols import MetricContext, TrainingData, conformance_problem
from .registry import SINGULAR

__all__ = ["check_target", "check_score", "check_initializer", "check_sampler", "check_metric",
           "check_plugin"]

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


@contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


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
        with _default_dtype(dtype):
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


def check_sampler(sampler: Any, *, dim: int = 2, n: int = 4000, seed: int = 0,
                  tol: float = 0.1) -> None:
    """Check a Sampler: protocol, shapes, callback, determinism and where it lands.

    Parameters
    ----------
    sampler : Sampler
        The component under test.
    dim, n, seed : int
        Dimension, number of particles, seed of the generator.
    tol : float, default 0.1
        Allowance for the sampler's own error after its horizon (bias of mean and std), on top of
        the Monte Carlo margin. 0.1 admits every built-in at its defaults (ULA's default horizon
        leaves (1 - h)^1000 = 0.08 of the mean gap) and refuses a wrong noise scale such as a BAOAB
        kicking with sqrt(2 gamma h) instead of sqrt(1 - e^{-2 gamma h}) (std 1.26 at gamma h = 0.5).

    Notes
    -----
    In float64, the sampler is run with the exact score of ``N(1, I_dim)`` from ``x0 ~ N(0, I)``
    (for diffusion samplers, their prior). Required: output shaped like ``x0``; ``x0`` unchanged;
    ``callback(step: int, t: float, x: Tensor shaped like x0)`` called at least once; identical
    output for the same generator seed; each coordinate's sample mean within
    ``tol + 5 std_hat / sqrt(n)`` of 1 and sample std within ``tol + 5 / sqrt(2 (n - 1))`` of 1:
    5 standard errors of Monte Carlo noise (the sample mean of n draws has sd std / sqrt(n); the
    sample std of n Gaussian draws has sd ~ std / sqrt(2 (n - 1))), plus ``tol``. At n = 4000 the
    margins are 0.079 (mean) and 0.056 (std), so a correct sampler fails a coordinate with
    probability ~ 2 dim * 3e-7.
    """
    from bench_plugins.scores.exact import ExactScore
    from bench_plugins.targets.gaussian import GaussianTarget

    who = _conform("samplers", "Sampler", sampler, "set family = 'langevin' or 'diffusion' and define "
                   "sample(score, x0, *, generator, callback)")
    with _default_dtype(torch.float64):
        score = ExactScore(GaussianTarget(dim, mean=1.0, std=1.0), None)
        x0 = torch.randn(n, dim, generator=_gen(seed + 1))
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
        again = sampler.sample(score, x0, generator=_gen(seed), callback=lambda step, t, x: None)
        _require(torch.equal(out, again), who, "is not deterministic: the same generator seed gave "
                 "different output", f"{_RNG_FIX} (torch.randn(..., generator=generator))")
        mean, std = out.mean(0), out.std(0)
        mean_bound, std_bound = tol + 5 * std / math.sqrt(n), tol + 5 / math.sqrt(2 * (n - 1))
        j = int(((mean - 1).abs() - mean_bound).argmax())
        _require((mean[j] - 1).abs() <= mean_bound[j], who, f"with the exact score of N(1, I_{dim}) "
                 f"its samples have mean {mean[j]:.4g} in coordinate {j} (allowed 1 +- "
                 f"{mean_bound[j]:.3g})", "check the drift sign, step size and time grid (or raise tol)")
        j = int((std - 1).abs().argmax())
        _require((std[j] - 1).abs() <= std_bound, who, f"with the exact score of N(1, I_{dim}) its "
                 f"samples have std {std[j]:.4g} in coordinate {j} (allowed 1 +- {std_bound:.3g})",
                 "check the noise scale (sqrt(2h) for Langevin) and the number of steps")


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


def check_plugin(module: Any) -> list[tuple[str, str, str]]:
    """Build every component a plugin registers, with default params, and check it.

    Parameters
    ----------
    module : module or object
        The plugin: an object with ``@hookimpl register_*`` functions.

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

    from .plugin_manager import build_registry

    registry = build_registry(extra=[module], entry_points=False)
    plugin = getattr(module, "__name__", type(module).__name__)
    target = GaussianTarget(2, mean=1.0, std=1.0)
    train = target.sample(200, _gen(0))
    data = TrainingData(train, train, 1)
    checks = {"targets": check_target, "scores": lambda obj: check_score(obj, target),
              "initializers": lambda obj: check_initializer(obj, target, data),
              "samplers": check_sampler, "metrics": check_metric}
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
    exact draws as the training set (the problem every check of this kit runs on)."""
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
