"""Gaussian tail probabilities in log space, finite far below float64 underflow.

The perturbed estimates of Cao, Chen, Sridharan, Wu (2026) put their traps where the target has
exponentially small mass; the closed-form masses and error bounds they report (``log pi(ball)``,
``log pi(cone)``) need these probabilities as logs, computed where scipy's values underflow to 0.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import betainc, betaln, gammainc, gammaln, logsumexp
from scipy.stats import ncx2, poisson

_TINY = 1e-280  # below this a scipy probability may be denormal or 0: switch to log-space series
_N_MC = 20_000  # Monte Carlo draws that normalize the noisy field


def _log1p_series(log_ratios: np.ndarray, last_ratio: np.ndarray) -> np.ndarray:
    """``log(1 + sum_n prod_{i<=n} rho_i + tail)`` for a series whose later ratios are ``<= last_ratio < 1``.

    ``log_ratios[..., i] = log rho_i``; the geometric tail bound makes the result an upper bound
    of the infinite sum (and essentially exact once the terms are small).
    """
    log_terms = np.cumsum(log_ratios, axis=-1)
    with np.errstate(divide="ignore"):
        tail = log_terms[..., -1] + np.log(last_ratio) - np.log1p(-last_ratio)
    parts = [np.zeros_like(tail)[..., None], log_terms, tail[..., None]]
    return logsumexp(np.concatenate(parts, axis=-1), axis=-1)


def _log_gammainc_lower(k: np.ndarray, y: float, n_terms: int = 64) -> np.ndarray:
    """``log P(k, y)``, the regularized lower incomplete gamma, finite far below float underflow.

    Series (DLMF 8.7.1): ``P(k, y) = y^k e^{-y} / Gamma(k+1) * sum_n y^n / ((k+1)...(k+n))``;
    used only where ``P < 1e-280``, which forces ``y < k`` so the ratios ``y/(k+n) < 1``.
    """
    k = np.asarray(k, dtype=np.float64)
    direct = gammainc(k, y)
    if y <= 0:
        return np.full_like(k, -np.inf)
    n = np.arange(1, n_terms + 1)
    ratios = np.minimum(y / (k[..., None] + n), 1.0 - 1e-12)
    series = k * math.log(y) - y - gammaln(k + 1) + _log1p_series(np.log(ratios), ratios[..., -1])
    with np.errstate(divide="ignore"):
        return np.where(direct > _TINY, np.log(direct), series)


def log_ncx2_cdf(x: float, df: float, nc: float) -> float:
    """``log P(Q <= x)`` for ``Q ~`` noncentral chi-square(df, nc); finite where scipy's underflows.

    Uses ``scipy.stats.ncx2``'s value when it is representable; otherwise the Poisson mixture
    ``sum_j Pois(j; nc/2) P(df/2 + j, x/2)`` in log space, with the terms beyond ``J`` bounded by
    ``Pois(> J) P(df/2 + J + 1, x/2)`` (P decreases in its first argument): an upper bound.
    """
    if x <= 0:
        return -math.inf
    if nc <= 0:
        return float(_log_gammainc_lower(np.array(df / 2), x / 2))
    direct = float(ncx2.logcdf(x, df, nc))
    if direct > math.log(_TINY):
        return direct
    lam = nc / 2
    top = int(lam + 30 * math.sqrt(lam) + 100)
    j = np.arange(top + 1)
    log_pois = j * math.log(lam) - lam - gammaln(j + 1)
    head = log_pois + _log_gammainc_lower(df / 2 + j, x / 2)
    tail = poisson.logsf(top, lam) + _log_gammainc_lower(np.array(df / 2 + top + 1), x / 2)
    return float(logsumexp(np.append(head, tail)))


def log_cone_mass(d: int, theta: float) -> float:
    """``log P(angle(z, u) <= theta)`` for ``z ~ N(0, s^2 I_d)``: ``0.5 I_{sin^2 theta}((d-1)/2, 1/2)``.

    In d = 2 this is ``theta / pi``; in d = 1 the cone is a half-line (mass 1/2). Where betainc
    underflows, DLMF 8.17.8 is used in log space:
    ``I_x(a, b) = x^a (1-x)^b / (a B(a, b)) F(a + b, 1; a + 1; x)`` (series ratios ``< x``).
    """
    if d == 1:
        return math.log(0.5)
    a, b, x = (d - 1) / 2, 0.5, math.sin(theta) ** 2
    direct = float(betainc(a, b, x))
    if direct > _TINY:
        return math.log(0.5 * direct)
    n = np.arange(2048)
    ratios = (a + b + n) / (a + 1 + n) * x
    log_f = _log1p_series(np.log(ratios), np.array(x))
    return float(math.log(0.5) + a * math.log(x) + b * math.log1p(-x) - math.log(a) - betaln(a, b) + log_f)


def log_ncx2_cdf_many(x: np.ndarray, df: float, nc: np.ndarray, precise_up_to: int = 64) -> np.ndarray:
    """``log P(Q_i <= x_i)`` for many noncentral chi-squares (broadcast ``x`` and ``nc``).

    scipy's vectorized value is used where it is representable; below ``1e-280`` the exact
    log-space series of :func:`log_ncx2_cdf` is used for up to ``precise_up_to`` entries, and the
    rest are returned as ``-inf`` (each such term is below 1e-280: callers sum probabilities, so
    dropping them changes a sum by less than ``1e-280`` times their count).
    """
    x, nc = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(nc, dtype=np.float64))
    with np.errstate(divide="ignore"):
        out = np.asarray(ncx2.logcdf(x, df, nc), dtype=np.float64)
    tiny = np.flatnonzero(~(out > math.log(_TINY)))
    if 0 < len(tiny) <= precise_up_to:
        flat_x, flat_nc, flat = x.ravel(), nc.ravel(), out.reshape(-1)
        for i in tiny:
            flat[i] = log_ncx2_cdf(float(flat_x[i]), df, float(flat_nc[i]))
    elif len(tiny):
        out[~(out > math.log(_TINY))] = -np.inf
    return out
