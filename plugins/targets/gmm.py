"""Gaussian mixture target with isotropic components and exact OU marginals.

Forward process (docs/architecture.md, Time and seeds): ``x_t = e^{-t} x_0 + sqrt(1 - e^{-2t}) z``. A mixture
``sum_j w_j N(m_j, s_j^2 I)`` is mapped to ``sum_j w_j N(e^{-t} m_j, (e^{-2t} s_j^2 + 1 - e^{-2t}) I)``:
each component is pushed forward on its own, the weights are unchanged.

The density, score and posterior math lives in module-level functions taking
``(x, log_weights, means_t, vars_t)`` so that other code (e.g. scores built on a mixture at
an arbitrary noise level) can reuse it.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from bench_core import hookimpl, positive_float, tensor_size, vector

F64 = torch.float64


# ---------------------------------------------------------------- mixture math (reusable)

def _joint_log_densities(x: Tensor, log_weights: Tensor, means_t: Tensor, vars_t: Tensor) -> Tensor:
    """``log w_j + log N(x; m_j, v_j I)`` as ``[n, K]`` in the dtype/device of ``x``.

    Squared distances are formed from the differences ``x - m_j`` (not from the expansion
    ``|x|^2 - 2 x.m + |m|^2``), so they keep full relative precision even in float32 when
    ``x`` sits close to a mean that is far from the origin.
    """
    log_w, means, var = log_weights.to(x), means_t.to(x), vars_t.to(x)
    sq = (x.unsqueeze(1) - means.unsqueeze(0)).pow(2).sum(-1)  # [n, K]
    d = x.shape[-1]
    return log_w - 0.5 * (sq / var + d * torch.log(2.0 * math.pi * var))


def mixture_log_prob(x: Tensor, log_weights: Tensor, means_t: Tensor, vars_t: Tensor) -> Tensor:
    """Normalized log density ``log sum_j w_j N(x; m_j, v_j I)`` of each row, ``[n]``.

    Parameters
    ----------
    x : Tensor [n, d]
    log_weights : Tensor [K]
        Log mixture weights (summing to 1 after ``exp``).
    means_t : Tensor [K, d]
    vars_t : Tensor [K]
        Isotropic variance of each component.
    """
    return torch.logsumexp(_joint_log_densities(x, log_weights, means_t, vars_t), dim=-1)


def mixture_posterior(x: Tensor, log_weights: Tensor, means_t: Tensor, vars_t: Tensor) -> Tensor:
    """``P(component j | x)``, ``[n, K]``: a softmax of the joint log densities (stable)."""
    return torch.softmax(_joint_log_densities(x, log_weights, means_t, vars_t), dim=-1)


def mixture_score(x: Tensor, log_weights: Tensor, means_t: Tensor, vars_t: Tensor) -> Tensor:
    """``grad log p(x) = sum_j post_j(x) (m_j - x) / v_j``, ``[n, d]``.

    Written as ``(post / v) @ M - x * sum_j post_j / v_j`` so that no ``[n, K, d]`` tensor
    is formed beyond the one the posterior needs.
    """
    coef = mixture_posterior(x, log_weights, means_t, vars_t) / vars_t.to(x)  # [n, K]
    return coef @ means_t.to(x) - x * coef.sum(-1, keepdim=True)


# ---------------------------------------------------------------- parameter parsing

def _weights(value: Any) -> Tensor:
    if (not isinstance(value, (list, tuple)) or len(value) == 0
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"parameter 'weights' must be a non-empty list of positive numbers, got {value!r}")
    w = torch.tensor([float(v) for v in value], dtype=F64)
    if not torch.isfinite(w).all() or (w <= 0).any():
        raise ValueError(f"parameter 'weights' must contain finite numbers > 0, got {value!r}")
    return w / w.sum()


def _means(value: Any, n_components: int, dim: int) -> Tensor:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"parameter 'means' must be a list with one entry (a number or a list of {dim} "
                         f"numbers) per component, got {value!r}")
    if len(value) != n_components:
        raise ValueError(f"parameter 'means' has {len(value)} entries but 'weights' has {n_components}: "
                         "give one mean per component")
    return torch.stack([vector(f"means[{j}]", entry, dim) for j, entry in enumerate(value)])


def _stds(value: Any, n_components: int) -> Tensor:
    if isinstance(value, (list, tuple)):
        if len(value) != n_components:
            raise ValueError(f"parameter 'std' has {len(value)} entries but 'weights' has {n_components}: "
                             "give one std per component, or a single number")
        return torch.tensor([positive_float(f"std[{j}]", v) for j, v in enumerate(value)], dtype=F64)
    return torch.full((n_components,), positive_float("std", value), dtype=F64)


# ---------------------------------------------------------------- target

class GMMTarget:
    r"""Isotropic Gaussian mixture :math:`\pi = \sum_j w_j N(m_j, s_j^2 I_d)` with exact OU marginals.

    The Section 4/9 mixture target of the paper (whose exact parameters are not given).

    Default: ``dim = 10``, ``weights = [0.5, 0.3, 0.2]``, ``means = [-3, 0, 3]`` (each times
    ``ones(10)``), ``std = 1``: three well-separated modes of unequal mass on the diagonal.
    Consecutive means are ``3 sqrt(10) = 9.49`` apart, so the midpoint is 4.74 standard
    deviations from each. Only the projection ``y = <x, 1>/sqrt(d)`` differs between
    components (means ``-9.49, 0, 9.49``, unit variance), so the Bayes classifier
    ``argmax_j w_j N_j(x)`` thresholds ``y`` at ``log(w0/w1)/a - a/2 = -4.690`` and
    ``a/2 - log(w2/w1)/a = 4.786`` (``a = 9.49``); its misassignment probability is
    ``0.5 Phi(-4.797) + 0.3 (Phi(-4.690) + Phi(-4.786)) + 0.2 Phi(-4.701) = 1.33e-6``
    (computed by 1-D quadrature). Mode masses are therefore essentially unambiguous, while a
    Langevin chain needs to cross a density valley of depth ``~ e^{-11}`` to switch modes.

    Parameters
    ----------
    dim : int
        Dimension d (>= 1).
    weights : list of float
        Positive mixture weights, normalized to sum to 1; their length sets K.
    means : list
        One entry per component: a number ``a`` (meaning ``a * ones(d)``) or a list of d numbers.
    std : float or list of float
        Positive standard deviation of every component (a number) or of each (a list of K).

    Attributes
    ----------
    dim, n_components : int
    weights : Tensor [K] float64
    means : Tensor [K, d] float64
    stds : Tensor [K] float64
    """

    def __init__(self, dim: int = 10, weights: Any = (0.5, 0.3, 0.2), means: Any = (-3.0, 0.0, 3.0),
                 std: Any = 1.0) -> None:
        self.weights = _weights(weights)  # a list written in the suite: its length is bounded by the file
        self.n_components = int(self.weights.shape[0])
        self.dim = tensor_size("dim", dim, per_unit=2 * self.n_components, what="the component means")
        self.means = _means(means, self.n_components, self.dim)
        self.stds = _stds(std, self.n_components)
        self.log_weights = self.weights.log()

    def __repr__(self) -> str:
        w = ", ".join(f"{v:.4g}" for v in self.weights.tolist())
        s = ", ".join(f"{v:.4g}" for v in self.stds.tolist())
        norms = ", ".join(f"{v:.4g}" for v in self.means.norm(dim=-1).tolist())
        return f"GMMTarget(dim={self.dim}, K={self.n_components}, weights=[{w}], |means|=[{norms}], stds=[{s}])"

    def marginal(self, t: float = 0.0) -> tuple[Tensor, Tensor]:
        """``(means_t [K, d], vars_t [K])`` (float64) of the mixture ``p_t``: same weights,
        means ``e^{-t} m_j``, variances ``e^{-2t} s_j^2 + 1 - e^{-2t}``."""
        decay = math.exp(-t)
        # -expm1(-2t) = 1 - e^{-2t} without cancellation for small t
        return decay * self.means, decay**2 * self.stds**2 - math.expm1(-2.0 * t)

    def mixture_components(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(weights [K], means [K, d], variances [K, d])`` (float64): the target as a mixture of
        diagonal Gaussians, the same interface as ``GaussianTarget.mixture_components``."""
        variances = (self.stds**2)[:, None].expand(self.n_components, self.dim).clone()
        return self.weights.clone(), self.means.clone(), variances

    def second_moment(self) -> float:
        """``E_pi ||x||^2 = sum_j w_j (||m_j||^2 + d s_j^2)``."""
        per_component = self.means.pow(2).sum(-1) + self.dim * self.stds**2
        return float((self.weights * per_component).sum())

    def sample_with_labels(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Exact draws and their component labels: ``(x [n, d], labels [n] int64)``.

        Labels come from ``torch.multinomial`` with ``generator``, then one Gaussian draw per row;
        dtype ``torch.get_default_dtype()``, device ``generator.device``.
        """
        device, dtype = generator.device, torch.get_default_dtype()
        if n == 0:  # multinomial refuses 0 draws
            return (torch.empty(0, self.dim, device=device, dtype=dtype),
                    torch.empty(0, device=device, dtype=torch.long))
        labels = torch.multinomial(self.weights.to(device), n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, device=device, dtype=dtype)
        means, stds = self.means.to(device=device, dtype=dtype), self.stds.to(device=device, dtype=dtype)
        return z.mul_(stds[labels].unsqueeze(1)).add_(means[labels]), labels

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` exact i.i.d. draws ``[n, d]`` (see :meth:`sample_with_labels`)."""
        return self.sample_with_labels(n, generator)[0]

    def log_prob(self, x: Tensor, t: float = 0.0) -> Tensor:
        """Normalized ``log p_t(x)``, ``[n]``."""
        means_t, vars_t = self.marginal(t)
        return mixture_log_prob(x, self.log_weights, means_t, vars_t)

    def score(self, x: Tensor, t: float = 0.0) -> Tensor:
        """Exact ``grad log p_t(x) = sum_j post_j(x) (e^{-t} m_j - x) / v_j(t)``, ``[n, d]``."""
        means_t, vars_t = self.marginal(t)
        return mixture_score(x, self.log_weights, means_t, vars_t)

    def component_posterior(self, x: Tensor, t: float = 0.0) -> Tensor:
        """``P(component j | x)`` under ``p_t``, ``[n, K]`` (rows sum to 1)."""
        means_t, vars_t = self.marginal(t)
        return mixture_posterior(x, self.log_weights, means_t, vars_t)


@hookimpl
def register_targets(register):
    register("gmm", GMMTarget,
             description="isotropic Gaussian mixture sum_j w_j N(m_j, s_j^2 I) with exact OU marginals")
