r"""``girsanov_ceiling``: the most TV a score error can cost DDPM's exponential integrator.

The exponential integrator of the reverse OU SDE (:func:`bench_plugins.samplers.ddpm.ou_exponential_integrator`)
moves ``y <- e^h y + 2 (e^h - 1) s(y, t_k) + sqrt(e^{2h} - 1) z`` on its grid ``t_0 = T > ... > t_N``.
Run with the exact score ``s`` (path law P) and with ``s_hat = s + delta`` (path law P_hat) from the same
N(0, I) start, each step is a Gaussian kernel with the same covariance ``(e^{2h} - 1) I`` and means
that differ by ``2 (e^h - 1) delta(y, t_k)``. The chain rule of KL over the steps (the discrete
Girsanov theorem) gives exactly

.. math::
    \mathrm{KL}(P \,\|\, \hat P) = \sum_k \frac{4 (e^{h_k} - 1)^2}{2 (e^{2 h_k} - 1)}
        E_P \|\delta(y_k, t_k)\|^2 = \sum_k 2 \tanh(h_k / 2)\, E_P \|\delta(y_k, t_k)\|^2 ,

with ``y_k`` the exact-score chain's state when it queries ``t_k`` (``2 tanh(h/2) <= h``: the sum is at
most ``T eps_bar^2`` along the chain). Data processing and Pinsker then bound the damage at the output:
``TV(sampler with s_hat, sampler with s) <= sqrt(KL / 2)``, and by the triangle inequality the output's
TV to the target is at most that plus the exact-score sampler's own TV. A measurement above it is a
bug, not a finding.

The metric runs the cell's sampler again with the exact score on ``n_mc`` fresh particles and
accumulates ``2 tanh(h_k/2) ||s_hat - s||^2`` along each particle's path at every query (the sampler's
``score_times()`` give ``h_k``): ``kl`` is the mean over particles (unbiased for the sum above), ``kl_se``
its standard error, ``tv`` the ceiling ``min(1, sqrt(kl / 2))`` and ``tv_upper`` the same at
``kl + 3 kl_se`` (what a test compares with, Monte Carlo error included).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from bench_core import MetricContext, SkipMetric, hookimpl, tensor_size

from bench_plugins.scores.exact import ExactScore


def step_kl_weights(score_times: list[tuple[float, float]]) -> list[float]:
    """``2 tanh(h_k / 2)`` for each query of the exponential integrator (the KL of one step per unit ``||delta||^2``)."""
    return [2.0 * math.tanh(h / 2.0) for _, h in score_times]


class PathKL:
    """The exact score, recording ``w_k ||s_hat(y, t_k) - s(y, t_k)||^2`` per particle at the k-th query."""

    rowwise = False  # one call per step on all particles: the k-th call is the k-th query

    def __init__(self, exact: Any, estimate: Any, weights: list[float], n: int, like: Tensor) -> None:
        self.exact, self.estimate, self.weights = exact, estimate, weights
        self.per_particle = torch.zeros(n, dtype=torch.float64, device=like.device)
        self.calls = 0

    def __call__(self, x: Tensor, t: float) -> Tensor:
        s = self.exact(x, t)
        if self.calls >= len(self.weights):
            raise SkipMetric(f"girsanov_ceiling: the sampler queried the score more than the {len(self.weights)} "
                             "times its score_times() lists")
        delta = (self.estimate(x, t) - s).to(torch.float64)
        self.per_particle.add_(delta.pow(2).sum(-1), alpha=self.weights[self.calls])
        self.calls += 1
        return s


class GirsanovCeiling:
    """Upper bound on TV(sampler with the cell's score, sampler with the exact score) for DDPM's exponential
    integrator (see the module docstring for the derivation and the keys).

    Parameters
    ----------
    n_mc : int, default 2000
        Particles of the exact-score chain the expectation is taken over.
    """

    #: needs the exact score along the chain: on a data set, `bench check` names this instead
    closed_form_only = "tv_classifier (a certified TV lower bound from samples alone)"
    higher_is_better = False
    keys = ("kl", "kl_se", "tv", "tv_upper")

    def __init__(self, n_mc: int = 2000) -> None:
        self.n_mc = tensor_size("n_mc", n_mc, what="the particles of the exact-score chain")

    def __call__(self, samples: Tensor, ctx: MetricContext) -> dict[str, float]:
        sampler = ctx.sampler
        if getattr(sampler, "discretization", None) != "exponential" or not hasattr(sampler, "score_times"):
            raise SkipMetric("girsanov_ceiling is derived for DDPM's exponential integrator (sampler ddpm with "
                             "discretization = 'exponential'); this cell's sampler is another")
        weights = step_kl_weights([(float(t), float(h)) for t, h in sampler.score_times()])
        x0 = torch.randn(self.n_mc, ctx.target.dim, generator=ctx.generator, device=ctx.generator.device,
                         dtype=samples.dtype).to(samples.device)
        recorder = PathKL(ExactScore(ctx.target, ctx.data), ctx.score, weights, self.n_mc, x0)
        with torch.inference_mode():
            sampler.sample(recorder, x0, generator=ctx.generator)
        per = recorder.per_particle
        kl = float(per.mean())
        se = float(per.std(correction=1)) / math.sqrt(self.n_mc) if self.n_mc > 1 else math.inf
        if not math.isfinite(kl):
            raise SkipMetric("girsanov_ceiling: the score error along the exact chain is not finite")
        return {"kl": kl, "kl_se": se, "tv": min(1.0, math.sqrt(kl / 2.0)),
                "tv_upper": min(1.0, math.sqrt(max(kl + 3.0 * se, 0.0) / 2.0))}


@hookimpl
def register_metrics(register):
    register("girsanov_ceiling", GirsanovCeiling,
             description="DDPM exponential integrator: TV ceiling sqrt(KL/2) from the score error along the chain")
