"""Score errors in the norm that governs each sampler (PAPER, "what a fair contrast measures").

``score_error`` reports ``eps_0^2 = E_pi||s_hat_0 - grad log pi||^2`` (what Langevin sees) and,
for diffusion samplers, the time-averaged ``eps_bar^2 = (1/T) sum_k h_k E_{p_{t_k}}||s_hat_{t_k} -
s_{t_k}||^2`` over the sampler's own time grid (what the bound of Chen et al. 2023 uses), with the
computable terms of that bound.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from bench_core import MetricContext, SkipMetric, hookimpl, nonnegative_int, tensor_size

from bench_plugins.samplers.cld import cld_transition
from bench_plugins.scores.exact import ExactScore


F64 = torch.float64
#: The smallest positive float64 (a subnormal, 2^-1074 ~ 4.9e-324); log10 of it (~ -323.3) is
#: the floor ``score_error.log10`` reports when the error is exactly 0 and no bound is known.
SMALLEST_POSITIVE_FLOAT64 = math.ulp(0.0)
LOG10_FLOOR = math.log10(SMALLEST_POSITIVE_FLOAT64)
SAMPLE_CHUNK = 20_000  # fresh target draws are made in chunks of this many rows


def optional_method(obj: Any, name: str) -> Optional[Callable[..., Any]]:
    method = getattr(obj, name, None)
    return method if callable(method) else None


def draw_target(ctx: MetricContext, n: int) -> Tensor:
    """``n`` fresh exact target samples drawn with ``ctx.generator``, in chunks (bounded memory)."""
    parts = []
    left = n
    while left > 0:
        take = min(left, SAMPLE_CHUNK)
        parts.append(ctx.target.sample(take, ctx.generator))
        left -= take
    return torch.cat(parts)


def _in_float64(fn: Callable[[Tensor], tuple[Tensor, Tensor]], x: Tensor) -> tuple[Tensor, Tensor]:
    """``fn(x)`` (an estimate and the exact value) in float64 when the estimate accepts float64
    input; an estimate that rejects it (e.g. a float32 network raising on dtype mismatch) is
    evaluated, together with the exact value, in the dtype of ``x``, so the two share rounding."""
    try:
        est, exact = fn(x.to(F64))
        if est.dtype != F64:
            raise TypeError("estimate did not keep float64")
    except (RuntimeError, TypeError):
        est, exact = fn(x)
    return est.to(F64), exact.to(F64)


def scores_at(ctx: MetricContext, x: Tensor, t: float) -> tuple[Tensor, Tensor]:
    """``(s_hat(x, t), grad log p_t(x))`` as float64 (see :func:`_in_float64`)."""
    return _in_float64(lambda y: (ctx.score(y, t), ctx.target.score(y, t)), x)


def squared_errors(ctx: MetricContext, x: Tensor, t: float) -> Tensor:
    """``||s_hat(x_i, t) - grad log p_t(x_i)||^2`` per point (float64 [n])."""
    est, exact = scores_at(ctx, x, t)
    return (est - exact).pow(2).sum(-1)


def _cld_squared_errors(ctx: MetricContext, x0: Tensor, t: float) -> Tensor:
    """Velocity-score errors at CLD phase-space points ``(x_t, v_t)`` drawn from the exact forward
    transition of data points ``x0`` with ``v_0 ~ N(0, I)`` (Gaussian: mean ``e^{tA} z_0``,
    covariance ``I - e^{tA} e^{tA}^T`` per coordinate pair)."""
    velocity = optional_method(ctx.score, "velocity_score")
    if velocity is None:
        raise SkipMetric(f"score_error: the cld sampler needs a CLD form of the estimate "
                         f"(velocity_score); {type(ctx.score).__name__} has none")
    phi = cld_transition(t)
    chol = torch.linalg.cholesky(torch.eye(2, dtype=F64) - phi @ phi.T + 1e-300 * torch.eye(2, dtype=F64))
    gen = ctx.generator
    x0 = x0.to(F64)
    v0, e1, e2 = (torch.randn(x0.shape, generator=gen, device=gen.device, dtype=F64).to(x0) for _ in range(3))
    x = phi[0, 0] * x0 + phi[0, 1] * v0 + chol[0, 0] * e1
    v = phi[1, 0] * x0 + phi[1, 1] * v0 + chol[1, 0] * e1 + chol[1, 1] * e2
    exact = ExactScore(ctx.target, None)
    est, ref = _in_float64(lambda y: (velocity(y, v.to(y), t), exact.velocity_score(y, v.to(y), t)), x)
    return (est - ref).pow(2).sum(-1)


def time_blocks(grid: list[tuple[float, float]], max_blocks: int) -> list[tuple[float, float]]:
    """At most ``max_blocks`` ``(t, weight)`` nodes for ``sum_k h_k f(t_k)``: consecutive steps are
    grouped and each group is evaluated at its first time with the group's total ``h`` (exact when
    ``len(grid) <= max_blocks``; a Riemann sum over the coarser grid otherwise)."""
    if len(grid) <= max_blocks:
        return list(grid)
    edges = [round(i * len(grid) / max_blocks) for i in range(max_blocks + 1)]
    return [(grid[a][0], sum(h for _, h in grid[a:b])) for a, b in zip(edges, edges[1:]) if b > a]


class ScoreError:
    r"""Squared L2 errors of the score estimate: at t = 0 and averaged over a diffusion sampler's grid.

    .. math::
        \mathrm{sq} = \frac1n \sum_{i=1}^n \|\hat s(x_i, 0) - \nabla\log\pi(x_i)\|^2,
        \qquad x_i \sim \pi \text{ i.i.d.},

    an unbiased estimate of :math:`\varepsilon_0^2 = E_\pi\|\hat s - \nabla\log\pi\|^2`
    (what Langevin sees). The points are ``ctx.reference`` (``n_mc = 0``) or ``n_mc`` fresh
    target samples drawn with ``ctx.generator``. The samples being scored are not used.

    Keys
    ----
    sq : float
        The estimate above.
    se : float
        Its standard error ``sd(e_i) / sqrt(n)`` with ``e_i`` the per-point squared errors
        (unbiased sd; ``inf`` for a single point).
    log10 : float
        ``log10(sq)`` when ``sq > 0``. When the Monte Carlo estimate is exactly 0 (the error
        underflows, e.g. the ball trap at d = 50) it is ``score.error_log_bound(target) / ln 10``,
        the log10 of an upper bound on :math:`\varepsilon_0^2`, when the estimate provides one;
        otherwise it is the floor ``log10(2^-1074) ~ -323.3`` (log10 of the smallest positive
        float64), never ``-inf``: read it as "0 to float64 precision".
    log10_is_bound : float
        1.0 when ``log10`` is the bound, else 0.0.
    rel : float
        ``sq / (1/n sum ||grad log pi(x_i)||^2)``, the error relative to :math:`E_\pi\|\nabla\log\pi\|^2`.
    bar_sq : float
        :math:`\bar\varepsilon^2 = \frac1T \sum_k h_k E_{p_{t_k}}\|\hat s_{t_k} - s_{t_k}\|^2` over the
        sampler's ``score_times()`` (``T = sum_k h_k``), with ``p_t`` the law of its forward process
        at t (``forward_coefficients``: ``x_t = a_t x_0 + sigma_t z`` on the reference points; for
        ``process = "cld"`` the phase-space marginal and the velocity score). Steps at which the
        estimate is exact by construction (``score.active(t)`` false) contribute exactly 0. For
        Langevin samplers, which query t = 0 only, ``bar_sq = sq``.
    chen_bound : float
        Diffusion cells on targets with ``chen_constants()`` (L, m2, KL(q || N(0, I))): the terms of
        Chen et al. (2023, Thm. 2) with every absolute constant set to 1:
        ``sqrt(KL) e^{-T} + (L sqrt(d h) + L m2 h) sqrt(T) + sqrt(T bar_sq)``, ``h`` the largest step.
        It is a scale for the sampling error, not a certified bound.
    <diagnostics>
        Every key of ``score.diagnostics()`` when the estimate provides it (a key clashing
        with one above is recorded as ``score_<key>``).

    Parameters
    ----------
    n_mc : int, default 0
        Monte Carlo size at t = 0: fresh target samples for ``sq`` (0: ``ctx.reference``).
        ``sq`` averages over these points.
    n_mc_bar : int, default 1000
        Monte Carlo size of each time node of ``bar_sq`` (the first of the t = 0 points, noised).
        Diffusion samplers only: for Langevin samplers ``bar_sq = sq``.
    bar_nodes : int, default 200
        Largest number of time nodes for ``bar_sq`` (see :func:`time_blocks`).
    """

    #: needs the target's exact score: on a data set, `bench check` names this instead
    closed_form_only = "dsm_loss (a learned score's denoising loss on training and held-out rows)"

    higher_is_better = False
    #: old param names, answered by `bench check` with the new one
    renamed = {"n_bar": "n_mc_bar"}

    def __init__(self, n_mc: int = 0, n_mc_bar: int = 1000, bar_nodes: int = 200) -> None:
        self.n_mc = nonnegative_int("n_mc", n_mc)
        self.n_mc_bar = tensor_size("n_mc_bar", n_mc_bar, what="the draws of each time node")
        self.bar_nodes = tensor_size("bar_nodes", bar_nodes, what="the time nodes")

    def __call__(self, samples: Tensor, ctx: MetricContext) -> dict[str, float]:
        x = ctx.reference if self.n_mc == 0 else draw_target(ctx, self.n_mc)
        n = x.shape[0]
        if n == 0:
            raise SkipMetric("score_error needs at least one reference sample (ctx.reference is empty)")
        est, exact = scores_at(ctx, x, 0.0)
        per_point = (est - exact).pow(2).sum(-1)
        sq = float(per_point.mean())
        se = float(per_point.std(correction=1)) / math.sqrt(n) if n > 1 else math.inf
        norm2 = float(exact.pow(2).sum(-1).mean())
        rel = sq / norm2 if norm2 > 0 else (0.0 if sq == 0 else math.inf)
        out = {"sq": sq, "se": se, **self._log10(sq, ctx), "rel": rel}
        out.update(self._time_averaged(ctx, x[: self.n_mc_bar], sq))
        diagnostics = optional_method(ctx.score, "diagnostics")
        if diagnostics is not None:
            for key, value in (diagnostics() or {}).items():
                out[f"score_{key}" if key in out else str(key)] = float(value)
        return out

    @staticmethod
    def _log10(sq: float, ctx: MetricContext) -> dict[str, float]:
        if sq > 0 or math.isnan(sq):
            return {"log10": math.log10(sq) if sq > 0 else math.nan, "log10_is_bound": 0.0}
        bound_fn = optional_method(ctx.score, "error_log_bound")
        bound = bound_fn(ctx.target) if bound_fn is not None else None
        if bound is not None and math.isfinite(float(bound)):
            return {"log10": float(bound) / math.log(10.0), "log10_is_bound": 1.0}
        return {"log10": LOG10_FLOOR, "log10_is_bound": 0.0}

    def _time_averaged(self, ctx: MetricContext, x0: Tensor, sq: float) -> dict[str, float]:
        sampler = ctx.sampler
        grid_fn = optional_method(sampler, "score_times")
        if getattr(sampler, "family", "langevin") != "diffusion" or grid_fn is None:
            return {"bar_sq": sq}
        grid = [(float(t), float(h)) for t, h in grid_fn()]
        total = sum(h for _, h in grid)
        active = optional_method(ctx.score, "active")
        cld = getattr(sampler, "process", "ou") == "cld"
        coefficients = optional_method(sampler, "forward_coefficients")
        acc = 0.0
        for t, weight in time_blocks(grid, self.bar_nodes):
            if weight == 0 or (active is not None and not active(t)):
                continue  # exact at t by construction: contributes exactly 0
            if cld:
                err = _cld_squared_errors(ctx, x0, t)
            else:
                a, sigma = coefficients(t) if coefficients is not None else (math.exp(-t), math.sqrt(-math.expm1(-2 * t)))
                z = torch.randn(x0.shape, generator=ctx.generator, device=ctx.generator.device, dtype=x0.dtype)
                err = squared_errors(ctx, a * x0 + sigma * z.to(x0), t)
            acc += weight * float(err.mean())
        bar_sq = acc / total if total > 0 else 0.0
        out = {"bar_sq": bar_sq}
        constants = optional_method(ctx.target, "chen_constants")
        if constants is not None and grid:
            c = constants()
            T, h = float(getattr(sampler, "T", total)), max(h for _, h in grid)
            d = ctx.target.dim
            out["chen_bound"] = (math.sqrt(c["kl"]) * math.exp(-T) + (c["L"] * math.sqrt(d * h) + c["L"] * c["m2"] * h)
                                 * math.sqrt(T) + math.sqrt(T * bar_sq))
        return out


@hookimpl
def register_metrics(register):
    register("score_error", ScoreError,
             description="eps_0^2 at t = 0, eps_bar^2 over a diffusion sampler's grid, Chen et al. bound terms")
