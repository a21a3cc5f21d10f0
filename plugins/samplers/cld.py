"""Critically damped Langevin diffusion (CLD): exact Gaussian-mixture marginals and the reverse sampler.

CLD (Dockhorn, Vahdat, Kreis, ICLR 2022) in the normalization analysed by Chen, Chewi, Li, Li,
Salim, Zhang (ICLR 2023): on phase space ``z = (x, v)`` in ``R^{2d}``, coordinates independent,

    dx = v dt,   dv = -x dt - gamma v dt + sqrt(2 gamma) dB,   gamma = 2 (critical damping),

with ``x_0 ~ q`` (the data) and ``v_0 ~ N(0, I)``. Per coordinate ``z' = A z + sqrt(D) B'`` with

    A = [[0, 1], [-1, -2]] = -I + N,   N = [[1, 1], [-1, -1]],   N^2 = 0,   D = diag(0, 4),

so ``e^{tA} = e^{-t} (I + t N) = e^{-t} [[1 + t, t], [-t, 1 - t]]`` (the series of e^{tN} stops).
The covariance obeys ``S' = A S + S A^T + D``; ``A + A^T + D = 0`` makes ``S = I`` stationary, and
``M = S - I`` solves ``M' = A M + M A^T``, hence ``S_t = I + e^{tA} (S_0 - I) e^{tA}^T`` and
``mean_t = e^{tA} mean_0``. For a data component ``N(m, s^2)`` in one coordinate,
``mean_0 = (m, 0)`` and ``S_0 - I = (s^2 - 1) e_1 e_1^T``, so with ``u_t = e^{tA} e_1 = e^{-t} (1 + t, -t)``

    mean_t = m u_t,   S_t = I + (s^2 - 1) u_t u_t^T,   det S_t = 1 + (s^2 - 1) |u_t|^2.

A mixture of diagonal Gaussians is thus mapped to a mixture of Gaussians on ``R^{2d}`` with one
2x2 block per coordinate. Integrating out ``v_0`` (``s^2 = 0`` in the formula above) gives
``x_t = a_t x_0 + sigma_t z`` with ``a_t = e^{-t} (1 + t)``, ``sigma_t^2 = 1 - a_t^2``.

Reverse process (time ``tau = T - t``): ``dz = [-A z + D grad log p_{T - tau}(z)] dtau + sqrt(D) dB``;
only ``grad_v log p_t`` (the velocity score) enters, through ``D``. Exponential integrator: freeze
the score over a step of length h and solve the linear SDE exactly,

    z <- e^{-hA} z + B_h (0, 4 s_v) + xi,   B_h = int_0^h e^{-uA} du,
    xi ~ N(0, Q_h),  Q_h = int_0^h e^{-uA} D e^{-uA}^T du.

With ``e^{-uA} = e^u (I - u N)`` and ``J_k = int_0^h u^k e^u du``, ``I_k = int_0^h u^k e^{2u} du``:
``B_h = J_0 I - J_1 N`` and, since ``(I - uN) e_2 = (-u, 1 + u)``,
``Q_h = 4 [[I_2, -(I_1 + I_2)], [-(I_1 + I_2), I_0 + 2 I_1 + I_2]]``.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
from torch import Tensor

from bench_core import ScoreEstimate, SkipCell, StepCallback, hookimpl, tensor_size

from .noise_blocks import BlockNoise, is_rowwise
from .schedules import time_grid, time_span

Components = tuple[Tensor, Tensor, Tensor]  # (weights [K], means [K, d], variances [K, d])
_LOG_2PI = math.log(2 * math.pi)


def cld_transition(t: float) -> Tensor:
    """``e^{tA} = e^{-t} [[1 + t, t], [-t, 1 - t]]`` as a float64 ``[2, 2]`` tensor."""
    e = math.exp(-t)
    return torch.tensor([[e * (1 + t), e * t], [-e * t, e * (1 - t)]], dtype=torch.float64)


def cld_x_coefficients(t: float) -> tuple[float, float]:
    """``(a_t, sigma_t)`` with ``x_t = a_t x_0 + sigma_t z`` once ``v_0 ~ N(0, I)`` is integrated out.

    ``a_t = e^{-t} (1 + t)`` and ``sigma_t^2 = 1 - a_t^2 = -expm1(2 (log1p(t) - t))`` (no
    cancellation at small t, where ``sigma_t^2 ~ t^2``).
    """
    return math.exp(-t) * (1 + t), math.sqrt(-math.expm1(2 * (math.log1p(t) - t)))


class CLDMarginal(NamedTuple):
    """Per-component CLD marginal: means of x and v and the 2x2 covariance entries, each [K, d]."""

    mean_x: Tensor
    mean_v: Tensor
    xx: Tensor
    xv: Tensor
    vv: Tensor
    det: Tensor  # xx * vv - xv^2, computed without cancellation


def cld_marginal(components: Components, t: float) -> CLDMarginal:
    """Exact CLD marginal at time t of ``x_0 ~ sum_j w_j N(m_j, diag(s_j^2))``, ``v_0 ~ N(0, I)`` (float64).

    ``S_t = I + (s^2 - 1) u u^T`` with ``u = e^{-t} (1 + t, -t)`` (module docstring).
    """
    _, means, variances = components
    means, variances = means.to(torch.float64), variances.to(torch.float64)
    ux, uv = math.exp(-t) * (1 + t), -math.exp(-t) * t
    sigma2 = cld_x_coefficients(t)[1] ** 2
    # 1 - |u|^2 >= 0 (its t-derivative is 4 t^2 e^{-2t}); writing S_xx and det as
    # s^2 (...) + (1 - ...) keeps them accurate even for very small data variances.
    one_minus_u2 = -math.expm1(math.log1p(2 * t + 2 * t * t) - 2 * t)
    c = variances - 1.0
    return CLDMarginal(mean_x=ux * means, mean_v=uv * means, xx=variances * ux * ux + sigma2,
                       xv=c * (ux * uv), vv=1.0 + c * (uv * uv), det=variances * (1.0 - one_minus_u2) + one_minus_u2)


def _precision_blocks(components: Components, x: Tensor, t: float) -> tuple[Tensor, ...]:
    """Means and the entries of each 2x2 block of ``S_t^{-1}`` (cast to ``x``), and ``log w_j - 0.5 log det S_j``."""
    weights = components[0]
    marg = cld_marginal(components, t)
    # 2x2 block inverse in closed form: S^{-1} = [[vv, -xv], [-xv, xx]] / det
    pxx, pxv, pvv = marg.vv / marg.det, -marg.xv / marg.det, marg.xx / marg.det
    log_coef = weights.to(torch.float64).log() - 0.5 * marg.det.log().sum(-1)
    return tuple(f.to(x) for f in (marg.mean_x, marg.mean_v, pxx, pxv, pvv, log_coef))


def _component_terms(components: Components, x: Tensor, v: Tensor, t: float) -> tuple[Tensor, Tensor]:
    """Per-component ``log w_j + log N_j(x, v)`` [n, K] and ``S_j^{-1}(z - mean_j)`` restricted to v [n, K, d]."""
    mx, mv, pxx, pxv, pvv, log_coef = _precision_blocks(components, x, t)
    dx = x[:, None, :] - mx  # [n, K, d]
    dv = v[:, None, :] - mv
    gx = pxx * dx + pxv * dv
    gv = pxv * dx + pvv * dv
    quad = (dx * gx + dv * gv).sum(-1)
    return log_coef - 0.5 * quad - x.shape[1] * _LOG_2PI, gv  # 2d dimensions: (2 pi)^{-d}


def mixture_phase_log_prob(components: Components, x: Tensor, v: Tensor, t: float) -> Tensor:
    """Normalized ``log p_t(x, v)`` [n] of the CLD marginal on ``R^{2d}`` (Dockhorn et al. 2022)."""
    log_joint, _ = _component_terms(components, x, v, t)
    return torch.logsumexp(log_joint, dim=1)


def mixture_velocity_score(components: Components, x: Tensor, v: Tensor, t: float) -> Tensor:
    """Exact ``grad_v log p_t(x, v)`` [n, d] of the CLD marginal of a diagonal Gaussian mixture.

    ``-sum_j r_j(x, v) (S_j^{-1} (z - mean_j))_v`` with the posterior ``r_j`` by a log-sum-exp
    (softmax); at ``t = 0`` it is ``-v``. Keeps the dtype and device of ``x``.
    """
    if components[0].numel() == 1:
        # one component (a Gaussian target): the posterior is 1; this path is the sampler's hot loop
        mx, mv, _, pxv, pvv, _ = _precision_blocks(components, x, t)
        offset = pxv[0] * mx[0] + pvv[0] * mv[0]
        return torch.addcmul(offset, x, pxv[0], value=-1.0).addcmul_(v, pvv[0], value=-1.0)
    log_joint, gv = _component_terms(components, x, v, t)
    posterior = torch.softmax(log_joint, dim=1)
    return torch.einsum("nk,nkd->nd", posterior, gv).neg_()


def _exp_moment(k: int, rate: float, h: float) -> float:
    """``int_0^h u^k e^{rate u} du`` for k <= 2: the power series when ``rate h < 1`` (positive terms,
    no cancellation; the closed form subtracts numbers of size 1 to get ``~h^{k+1}``, losing about
    ``eps / (rate h)^{k+1}`` relative accuracy at small h), else the closed form by parts."""
    if rate * h < 1.0:
        # sum_n rate^n h^{n+k+1} / (n! (n+k+1)); 30 terms leave a relative error below 1/30! ~ 4e-33
        return sum(rate**n * h ** (n + k + 1) / (math.factorial(n) * (n + k + 1)) for n in range(30))
    head = sum((-1) ** j * math.factorial(k) / math.factorial(k - j) * h ** (k - j) / rate ** (j + 1)
               for j in range(k + 1))
    return math.exp(rate * h) * head - (-1) ** k * math.factorial(k) / rate ** (k + 1)


def cld_step_integrals(h: float) -> tuple[Tensor, Tensor]:
    """``(B_h, Q_h)``: ``int_0^h e^{-uA} du`` and ``int_0^h e^{-uA} D e^{-uA}^T du``, float64 [2, 2].

    Closed forms in the module docstring; they drive the exponential integrator of :class:`CLD`.
    """
    j0, j1 = _exp_moment(0, 1.0, h), _exp_moment(1, 1.0, h)
    i0, i1, i2 = (_exp_moment(k, 2.0, h) for k in range(3))
    b = torch.tensor([[j0 - j1, -j1], [j1, j0 + j1]], dtype=torch.float64)  # J0 I - J1 N
    q = 4.0 * torch.tensor([[i2, -(i1 + i2)], [-(i1 + i2), i0 + 2 * i1 + i2]], dtype=torch.float64)
    return b, q


class CLD:
    """Reverse-time critically damped Langevin diffusion with an exponential integrator.

    Dockhorn, Vahdat, Kreis (ICLR 2022); the analysis and normalization (gamma = 2, unit mass) of
    Chen, Chewi, Li, Li, Salim, Zhang (ICLR 2023). Starts from the stationary law ``N(0, I)^2``
    at forward time T (``x0`` from the caller, ``v`` drawn here), then for each step from forward
    time ``t_{k-1}`` to ``t_k`` (``h = t_{k-1} - t_k``) freezes the velocity score
    ``s_v = score.velocity_score(x, v, t_{k-1})`` and solves the linear part exactly:
    ``z <- e^{-hA} z + B_h (0, 4 s_v) + xi``, ``xi ~ N(0, Q_h)`` per coordinate (:func:`cld_step_integrals`).
    Returns the x part at ``t_min``.

    Parameters
    ----------
    T : float
        Horizon (forward time of the start).
    n_steps : int
        Number of steps (= score queries).
    t_min : float
        Forward time of the returned samples (early stopping), ``0 < t_min < T``.
    grid : {"uniform", "geometric"}
        Uniform or log-uniform time grid.

    Notes
    -----
    The velocity score is the only damping of the reverse drift and it enters explicitly, so a
    step longer than ``h* ~ 0.537`` amplifies errors (spectral radius of the step map > 1 at the
    stationary score; tests/test_cld.py). A few such steps at the start are forgotten (the default
    geometric grid with ``T = 10`` is accurate from ``n_steps = 100``: first step 0.88), but with
    ``n_steps = 50`` (first steps 1.68, 1.40, ...) the output is far off. Uniform grids converge at
    second order in the x-marginal, geometric grids at first order (measured in tests/test_cld.py).
    """

    family = "diffusion"
    process = "cld"

    def __init__(self, T: float = 10.0, n_steps: int = 1000, t_min: float = 1e-3,
                 grid: str = "geometric") -> None:
        self.T, self.t_min = time_span(T, t_min)
        self.n_steps = tensor_size("n_steps", n_steps, what="the time grid")
        self.grid = grid
        self._times = time_grid(self.T, self.t_min, self.n_steps, grid).tolist()
        self._coefficients = [self._step_coefficients(h) for _, h in self.score_times()]

    def __repr__(self) -> str:
        return f"CLD(T={self.T:g}, n_steps={self.n_steps}, t_min={self.t_min:g}, grid={self.grid!r})"

    def score_times(self) -> list[tuple[float, float]]:
        """``(t_k, h_k)`` per score query: forward time of the query and step length."""
        return [(a, a - b) for a, b in zip(self._times[:-1], self._times[1:])]

    def forward_coefficients(self, t: float) -> tuple[float, float]:
        """``(a_t, sigma_t)`` of the x-marginal (:func:`cld_x_coefficients`)."""
        return cld_x_coefficients(t)

    @staticmethod
    def _step_coefficients(h: float) -> list[float]:
        """``[E11, E12, E21, E22, g_x, g_v, L11, L21, L22]``: ``e^{-hA}``, ``4 B_h e_2``, chol(Q_h)."""
        e = math.exp(h)
        b, q = cld_step_integrals(h)
        chol = torch.linalg.cholesky(q)
        return [e * (1 - h), -e * h, e * h, e * (1 + h), 4 * b[0, 1].item(), 4 * b[1, 1].item(),
                chol[0, 0].item(), chol[1, 0].item(), chol[1, 1].item()]

    def sample(self, score: ScoreEstimate, x0: Tensor, *, generator: torch.Generator,
               callback: Optional[StepCallback] = None) -> Tensor:
        """Run the reverse chain from ``(x0, v ~ N(0, I))``; return the x part ``[n, d]`` at ``t_min``.

        ``score.velocity_score(x, v, t)`` is required (else :class:`~bench_core.SkipCell`).
        Noise order on ``generator``: v, then per step the x noise and the v noise (each like x).
        ``callback(k, t_k, x)`` sees the state after step k at forward time ``t_k``.
        """
        velocity_score = getattr(score, "velocity_score", None)
        if velocity_score is None:
            raise SkipCell(f"cld needs a score estimate with a CLD form (velocity_score(x, v, t)); "
                           f"{type(score).__name__} has none")
        x = x0.clone()
        v = torch.empty_like(x).normal_(generator=generator)
        xi1 = torch.empty_like(x)
        # the v noise and the old x go a block at a time (BlockNoise); the x noise is drawn whole
        # first, so the generator's order stays "all x noise, then all v noise" at every step
        blocks = BlockNoise(x)
        x_old = torch.empty_like(blocks.buffer)
        rowwise = is_rowwise(score)
        for k, (t, coefficients) in enumerate(zip(self._times[:-1], self._coefficients), start=1):
            e11, e12, e21, e22, gx, gv, l11, l21, l22 = coefficients
            xi1.normal_(generator=generator)
            for xb, vb, x1b, s_v, xi2 in blocks.evaluated(lambda xr, vr, _: velocity_score(xr, vr, t), x, v, xi1,
                                                          rowwise=rowwise, generator=generator):
                xo = x_old[: xb.shape[0]].copy_(xb)
                xb.mul_(e11).add_(vb, alpha=e12).add_(s_v, alpha=gx).add_(x1b, alpha=l11)
                vb.mul_(e22).add_(xo, alpha=e21).add_(s_v, alpha=gv).add_(x1b, alpha=l21).add_(xi2, alpha=l22)
            if callback is not None:
                callback(k, self._times[k], x)
        return x


@hookimpl
def register_samplers(register):
    register("cld", CLD, description="critically damped Langevin diffusion, exponential integrator "
                                     "(Dockhorn et al. 2022)")
