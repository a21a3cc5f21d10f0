"""Mode-assignment metric for mixture targets: a certified lower bound on TV from mode masses.

PAPER, "what a fair contrast measures": TV lower bounds "from the mode assignment for
mixtures". A sampler that misses a mode, or puts the wrong mass on it (Langevin mixing slowly
between well-separated modes), is far from the target in TV even when its samples look
locally right; the masses it gives each mode certify that.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from bench_core import MetricContext, SkipMetric, hookimpl, open_interval_float


F64 = torch.float64
_CHUNK = 20_000  # rows per posterior evaluation: the posterior forms an [n, K, d] difference tensor


def _tv(p: Tensor, q: Tensor) -> float:
    """Total variation ``0.5 sum_j |p_j - q_j|`` between two probability vectors."""
    return 0.5 * float((p - q).abs().sum())


class TVModes:
    r"""Certified lower bound on TV(law of the samples, pi) from soft mode assignments.

    Applies to mixture targets ``pi = sum_j w_j pi_j`` exposing ``component_posterior(x)``
    (``post_j(x) = w_j pi_j(x) / pi(x)``) and ``weights``; other targets raise ``SkipMetric``.
    The samples ``x_1..x_n`` are treated as i.i.d. draws from their law P (independent chains).

    Derivation. ``K(x, j) = post_j(x)`` is a Markov kernel from R^d to {1..K}. By the data
    processing inequality for f-divergences (e.g. Tsybakov 2009, Lemma 2.1; Csiszar 1967),
    :math:`\mathrm{TV}(KP, K\pi) \le \mathrm{TV}(P, \pi)`, and
    :math:`(K\pi)_j = E_\pi[\mathrm{post}_j] = \int w_j \pi_j = w_j` exactly. With
    :math:`\tilde p_j = \frac1n \sum_i \mathrm{post}_j(x_i)` (unbiased for :math:`(KP)_j`), the
    triangle inequality gives

    .. math::
        \mathrm{TV}(P, \pi) \ge \mathrm{TV}(KP, w) \ge \mathrm{TV}(\tilde p, w) - \mathrm{TV}(\tilde p, KP).

    Fluctuation of the last term: replacing one sample changes :math:`\tilde p` by a vector of
    L1 norm <= 2/n, hence ``TV(p~, KP)`` by <= 1/n; McDiarmid's inequality (McDiarmid 1989) gives
    :math:`P(\mathrm{TV}(\tilde p, KP) \ge E + \varepsilon) \le e^{-2 n \varepsilon^2}`, i.e.
    :math:`\varepsilon = \sqrt{\log(1/\alpha) / (2n)}` at level alpha. Its mean: by Jensen,
    :math:`E|\tilde p_j - (KP)_j| \le \sqrt{\mathrm{Var}(\mathrm{post}_j)/n}`, and since
    :math:`\mathrm{post}_j \in [0, 1]`, :math:`\mathrm{Var}(\mathrm{post}_j) \le p_j (1 - p_j)`
    with :math:`p = KP`; by Cauchy-Schwarz :math:`\sum_j \sqrt{p_j(1-p_j)} \le \sqrt{K \sum_j p_j(1-p_j)}
    \le \sqrt{K (1 - 1/K)} = \sqrt{K-1}` (as :math:`\sum_j p_j^2 \ge 1/K`). So
    :math:`E\,\mathrm{TV}(\tilde p, KP) \le \frac12\sqrt{(K-1)/n}` and, with probability
    >= 1 - alpha (alpha = 1 - confidence),

    .. math::
        \mathrm{TV}(P, \pi) \ge \mathrm{lower} = \max\Big(0,\ \mathrm{TV}(\tilde p, w)
            - \tfrac12\sqrt{(K-1)/n} - \sqrt{\log(1/\alpha)/(2n)}\Big).

    Keys
    ----
    tv : float
        ``TV(p~, w)``, the point estimate of ``TV(KP, w)``.
    lower : float
        The certified bound above.
    hard_tv : float
        TV between the histogram of hard assignments ``argmax_j post_j(x_i)`` and ``w``
        (informative, not certified: for well-separated modes it is close to ``tv``).
    mode_<j> : float
        ``p~_j``, the fraction of the samples' mass assigned to component j.

    Parameters
    ----------
    confidence : float, default 0.95
        ``1 - alpha``, in the open interval (0, 1).
    """

    #: needs the target's mixture components: on a data set, `bench check` names this instead
    closed_form_only = "tv_classifier (a certified TV lower bound from samples alone)"

    higher_is_better = True

    def __init__(self, confidence: float = 0.95) -> None:
        self.confidence = open_interval_float("confidence", confidence, 0.0, 1.0)

    def __call__(self, samples: Tensor, ctx: MetricContext) -> dict[str, float]:
        target = ctx.target
        posterior = getattr(target, "component_posterior", None)
        if not callable(posterior) or not hasattr(target, "weights"):
            raise SkipMetric(f"tv_modes needs a mixture target (with component_posterior and weights); "
                             f"the target is a {type(target).__name__}")
        n = samples.shape[0]
        if n == 0:
            raise SkipMetric("tv_modes needs at least one sample")
        if not torch.isfinite(samples).all():
            raise SkipMetric("tv_modes: non-finite samples")
        weights = torch.as_tensor(target.weights, dtype=F64).flatten().cpu()
        weights = weights / weights.sum()
        k = weights.shape[0]

        # float64 so that posteriors of points between modes are not rounded to hard 0/1
        soft_sum = torch.zeros(k, dtype=F64)
        hard_count = torch.zeros(k, dtype=F64)
        for chunk in torch.split(samples, _CHUNK):
            post = posterior(chunk.to(F64))
            if post.shape != (chunk.shape[0], k):
                raise ValueError(f"component_posterior returned shape {tuple(post.shape)}, "
                                 f"expected ({chunk.shape[0]}, {k})")
            soft_sum += post.sum(0).cpu()
            hard_count += torch.bincount(post.argmax(-1), minlength=k).to(F64).cpu()
        p_tilde = soft_sum / n
        tv = _tv(p_tilde, weights)
        alpha = 1.0 - self.confidence
        margin = 0.5 * math.sqrt((k - 1) / n) + math.sqrt(math.log(1.0 / alpha) / (2.0 * n))
        out = {"tv": tv, "lower": max(0.0, tv - margin), "hard_tv": _tv(hard_count / n, weights)}
        out.update({f"mode_{j}": float(v) for j, v in enumerate(p_tilde.tolist())})
        return out


@hookimpl
def register_metrics(register):
    register("tv_modes", TVModes,
             description="certified lower bound on TV from soft mode masses of a mixture target (McDiarmid)")
