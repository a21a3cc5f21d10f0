"""check_sampler: where a sampler lands with the exact score of three Gaussians, within margins
derived from the Monte Carlo error plus the bias its author states.

>>> from bench_core.kit import check_sampler
>>> check_sampler(MySampler(step_size=0.01))          # doctest: +SKIP
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import torch
from torch import Tensor

from bench_core.base.torch_defaults import default_dtype
from bench_core.kit.assertions import RNG_FIX, check_tensor, conform, finite_real, require, seeded

__all__ = ["check_sampler", "sampler_margins", "sampler_targets", "DEFAULT_BIAS"]

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
DEFAULT_BIAS = 0.02


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
    out = sampler.sample(score, x0, generator=seeded(seed), callback=lambda step, t, x: calls.append(
        (step, t, tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__)))
    require(torch.equal(x0, copy), who, "modified x0 in place", "start from x = x0.clone()")
    check_tensor(out, who, "sample(...)", tuple(x0.shape), x0.dtype, x0.device,
                  "return particles in the dtype of x0")
    require(calls, who, "never called callback", "call callback(step, t, x) after every step")
    for step, t, shape in calls:
        require(isinstance(step, int) and not isinstance(step, bool), who, f"callback got step "
                 f"{step!r} ({type(step).__name__}), not an int", "pass the step number")
        require(finite_real(t), who, f"callback got t {t!r} ({type(t).__name__}), not a float",
                 "pass t as a Python float")
        require(shape == tuple(x0.shape), who, f"callback got x = {shape}, expected shape "
                 f"{tuple(x0.shape)}", "pass the current particles, a tensor shaped like x0")
    return out


_MEAN_FIX = "check the drift sign, step size, time grid and horizon"
_VARIANCE_FIX = "check the noise scale (sqrt(2h) for Langevin) and the number of steps"


def _moment_failures(out: Tensor, target: Any, where: str, margins: dict[str, float],
                     bias: float) -> list[tuple[int, float, str, str]]:
    """Per coordinate mean and variance, and the variance averaged over coordinates, against their margins:
    ``[(pooled?, excess over the margin, message, fix)]`` for each that is off."""
    dim = out.shape[1]
    failures: list[tuple[int, float, str, str]] = []
    mean, var = out.mean(0), out.var(0)
    mean_err = (mean - target.mean) / target.std  # in units of the target's std
    var_err = var / target.std**2 - 1.0            # relative
    per_coordinate = (
        ("mean", mean_err, _MEAN_FIX, lambda j, e: f"the mean of coordinate {j} is {mean[j]:.4g}, not "
         f"{target.mean[j]:.4g} (error {e:+.3f} target std"),
        ("variance", var_err, _VARIANCE_FIX, lambda j, e: f"the variance of coordinate {j} is {1 + e:.3f}x the "
         f"target's {target.std[j] ** 2:.4g} (relative error {e:+.3f}"))
    for margin, errors, fix, says in per_coordinate:
        allowed = margins[margin] + bias
        for j in range(dim):
            if abs(errors[j]) > allowed:
                failures.append((0, float(abs(errors[j])) / allowed, f"{where} {says(j, float(errors[j]))}, allowed "
                                 f"+-{allowed:.3f} = MC margin {margins[margin]:.3f} + bias {bias:g})", fix))
    pooled, allowed = float(var_err.mean()), margins["pooled_variance"] + bias
    if abs(pooled) > allowed:
        failures.append((1, abs(pooled) / allowed,
                         f"{where} the variance averaged over its {dim} coordinates is {1 + pooled:.3f}x "
                         f"the target's (relative error {pooled:+.3f}, allowed +-{allowed:.3f} = MC margin "
                         f"{margins['pooled_variance']:.3f} + bias {bias:g})", _VARIANCE_FIX))
    return failures


def check_sampler(sampler: Any, *, dim: int = 4, n: int = 4000, seed: int = 0,
                  bias: float = DEFAULT_BIAS) -> None:
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

    if not (finite_real(bias) and bias >= 0):
        raise ValueError(f"parameter 'bias' must be a finite number >= 0, got {bias!r}")
    if not (isinstance(dim, int) and dim >= 1 and isinstance(n, int) and n >= 2):
        raise ValueError(f"check_sampler needs dim >= 1 and n >= 2, got dim={dim!r}, n={n!r}")
    who = conform("samplers", "Sampler", sampler, "set family = 'langevin' or 'diffusion' and define "
                   "sample(score, x0, *, generator, callback)")
    margins = sampler_margins(dim, n)
    targets = sampler_targets(dim)
    failures: list[tuple[int, float, str, str]] = []  # (pooled?, excess ratio, message, fix)
    with default_dtype(torch.float64):
        for k, (formula, kind, target) in enumerate(targets):
            score = ExactScore(target, None)
            x0 = torch.randn(n, dim, generator=seeded(seed + 2 * k + 1))
            out = _sample_checked(sampler, score, x0, seed + 2 * k, who)
            if k == 0:
                again = sampler.sample(score, x0, generator=seeded(seed), callback=lambda step, t, x: None)
                require(torch.equal(out, again), who, "is not deterministic: the same generator seed gave "
                         "different output", f"{RNG_FIX} (torch.randn(..., generator=generator))")
            where = f"with the exact score of {formula} (target {k + 1} of {len(targets)}: {kind})"
            failures += _moment_failures(out, target, where, margins, bias)
    if failures:
        # a coordinate's own failure first (it names the coordinate), then the worst excess over its margin
        _, _, problem, fix = min(failures, key=lambda f: (f[0], -f[1]))
        checks = len(targets) * (2 * dim + 1)
        raise AssertionError(f"{who}: {problem} [{len(failures)} of {checks} moment checks fail]; {fix} "
                             f"(or state your sampler's own bias with check_sampler(..., bias=...))")
