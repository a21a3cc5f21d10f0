"""The smooth step phi used by the perturbed score estimates (Cao, Chen, Sridharan, Wu 2026).

``phi(r) = 1`` on ``r <= 1``, ``0`` on ``r >= 2`` and, in between,
``phi(r) = 1 - g(r - 1)`` with ``g(u) = f(u) / (f(u) + f(1 - u))`` and ``f(u) = exp(-1/u)``
for ``u > 0`` (else 0). This is the cut-off of Theorems 1 and 7 of the paper (its
"Notation"): it is C-infinity, so the estimates built from it are smooth and Lipschitz.

Numerically the ratio of two exponentials is evaluated as a logistic function,
``phi = sigmoid(1/u - 1/(1 - u))`` with ``u = r - 1``, which never forms ``0/0`` or
``inf/inf``: no NaN for any finite (or infinite) input, in float32 or float64, and the
values outside ``(1, 2)`` are exactly 1 and exactly 0.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["smooth_step", "smooth_step_grad", "SMOOTH_STEP_LIPSCHITZ"]


def _inside(r: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mask of ``1 < r < 2`` and the safe pair ``(u, 1 - u)`` (0.5 where masked out).

    ``1 - u`` is formed as ``2 - r`` rather than ``1 - (r - 1)`` to keep the digits near r = 2.
    """
    inside = (r > 1) & (r < 2)
    half = torch.full_like(r, 0.5)
    u = torch.where(inside, r - 1, half)
    v = torch.where(inside, 2 - r, half)
    return inside, u, v


def smooth_step(r: Tensor) -> Tensor:
    """The smooth step ``phi(r)`` of Cao, Chen, Sridharan, Wu (2026), Theorems 1 and 7.

    Parameters
    ----------
    r : Tensor
        Any shape, floating dtype (typically ``||x - c|| / R``).

    Returns
    -------
    Tensor
        ``phi(r)``, same shape, dtype and device as ``r``: exactly 1 on ``r <= 1``, exactly 0
        on ``r >= 2``, strictly decreasing from 1 to 0 on ``(1, 2)``.

    Notes
    -----
    ``g(u) = e^{-1/u} / (e^{-1/u} + e^{-1/(1-u)}) = sigmoid(1/(1-u) - 1/u)``, hence
    ``phi = 1 - g = sigmoid(1/u - 1/(1-u))``; ``1/u`` may overflow to ``inf`` near the ends,
    where ``sigmoid(+-inf)`` is the correct limit 1 or 0.
    """
    inside, u, v = _inside(r)
    mid = torch.sigmoid(1 / u - 1 / v)
    out = torch.where(inside, mid, (r <= 1).to(r.dtype))
    return torch.where(torch.isnan(r), r, out)  # a NaN radius is a bug upstream: keep it visible


def smooth_step_grad(r: Tensor) -> Tensor:
    """Derivative ``phi'(r)`` (<= 0), zero outside ``(1, 2)``; used for Lipschitz bounds.

    Parameters
    ----------
    r : Tensor
        Any shape, floating dtype.

    Returns
    -------
    Tensor
        ``phi'(r)``, same shape, dtype and device as ``r``.

    Notes
    -----
    With ``z = 1/u - 1/v`` (``v = 1 - u``): ``phi' = -sigmoid(z) sigmoid(-z) (1/u^2 + 1/v^2)``.
    Near the ends the first factor underflows (``~e^{-1/u}``) while the second overflows, so
    the product is formed in log space: ``log(sigmoid(z) sigmoid(-z)) = -|z| - 2 log(1 + e^{-|z|})``
    and ``log(1/u^2 + 1/v^2) = -2 log m + log1p((m/M)^2)`` with ``m = min(u, v)``,
    ``M = max(u, v)`` (finite for every representable ``m > 0``).
    """
    inside, u, v = _inside(r)
    z = 1 / u - 1 / v
    m, big = torch.minimum(u, v), torch.maximum(u, v)
    log_bump = -z.abs() - 2 * torch.nn.functional.softplus(-z.abs())
    log_chain = -2 * torch.log(m) + torch.log1p((m / big) ** 2)
    mid = -torch.exp(log_bump + log_chain)
    return torch.where(inside, mid, torch.zeros_like(r))


def _lipschitz_constant() -> float:
    """``max |phi'|`` on a float64 grid of step 5e-6 over [1, 2] (it contains r = 1.5).

    |phi'| is symmetric about r = 1.5 (``g(u) + g(1 - u) = 1``) and peaks there at exactly 2:
    ``sigmoid(0)^2 * (1/0.25 + 1/0.25) = 0.25 * 8``; the grid confirms no higher interior value.
    """
    grid = torch.linspace(1.0, 2.0, 200_001, dtype=torch.float64)
    return float(smooth_step_grad(grid).abs().max())


#: ``sup_r |phi'(r)|`` computed numerically at import (= 2.0): phi is 2-Lipschitz.
SMOOTH_STEP_LIPSCHITZ: float = _lipschitz_constant()
