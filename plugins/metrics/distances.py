"""Transport / kernel distances and descriptive geometry of the produced samples.

- ``sinkhorn``: the debiased Sinkhorn divergence of geomloss (the PAPER protocol: p = 2,
  blur 0.01, 500 produced vs 500 of the target samples), with a same-distribution ``null``.
- ``energy``: the energy distance (geomloss ``"energy"``), with its ``null``.
- ``radius``: quantiles of ||x|| of samples and reference (descriptive).
- ``nearest_train``: distance to the nearest distinct training point, relative to fresh
  target samples (memorization).

Every subset is chosen with ``ctx.generator`` permutations; computations are float64.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from bench_core import MetricContext, SkipMetric, hookimpl, positive_float, tensor_size

from .float64_blocks import norms64


F64 = torch.float64
_NN_BLOCK_ELEMENTS = 2048 * 2048  # nearest_train: at most this many distances in memory at once


# ---------------------------------------------------------------- shared helpers

def permutation(n: int, gen: torch.Generator, device: torch.device) -> Tensor:
    """A random permutation of ``range(n)`` drawn from ``gen`` (on its device), moved to ``device``."""
    return torch.randperm(n, generator=gen, device=gen.device).to(device)


def checked_samples(samples: Tensor, name: str, minimum: int) -> Tensor:
    """``samples`` detached, or SkipMetric when there are fewer than ``minimum`` or any is not finite."""
    samples = samples.detach()
    if samples.shape[0] < minimum:
        raise SkipMetric(f"{name} needs at least {minimum} samples, got {samples.shape[0]}")
    if not torch.isfinite(samples).all():
        raise SkipMetric("non-finite samples")
    return samples


def _reference_pool(ctx: MetricContext, needed: int, device: torch.device) -> Tensor:
    """``ctx.reference`` (float64), topped up with fresh exact target samples drawn with
    ``ctx.generator`` when it has fewer than ``needed`` rows."""
    ref = ctx.reference.detach().to(device=device, dtype=F64)
    if ref.shape[0] < needed:
        extra = ctx.target.sample(needed - ref.shape[0], ctx.generator)
        ref = torch.cat([ref, extra.detach().to(device=device, dtype=F64)])
    return ref


def value_and_null(loss, samples: Tensor, ctx: MetricContext, n_mc: int, *, name: str, minimum: int = 1,
                   top_up: bool = True) -> dict[str, float]:
    """``value = loss(X, Y_a)`` and ``null = loss(Y_a, Y_b)``.

    ``X``: ``m = min(n_mc, #samples)`` produced points (random subset); ``Y_a``, ``Y_b``: two
    disjoint random subsets of ``m`` reference points each. ``null`` is one draw of the
    metric's value when the samples are exact: the finite-sample floor ``value`` is to be
    compared with. When the reference has fewer than ``2 m`` rows it is topped up with exact target
    draws, unless ``top_up`` is false or the target is a finite data set (a target with ``split``, which
    has no more rows than its held-out ones): then ``m = min(n_mc, #samples, #reference // 2)``, so value
    and null compare sets of one size. ``minimum``: the fewest points ``loss`` takes per set.
    """
    samples = checked_samples(samples, name, minimum)
    device = samples.device
    m = min(n_mc, samples.shape[0])
    if not top_up or callable(getattr(ctx.target, "split", None)):
        m = min(m, ctx.reference.shape[0] // 2)
        if m < minimum:
            raise SkipMetric(f"{name} needs at least {2 * minimum} reference points (two halves of {minimum}), got "
                             f"{ctx.reference.shape[0]}")
    x = samples[permutation(samples.shape[0], ctx.generator, device)[:m]].to(F64)  # the subset only, in float64
    ref = _reference_pool(ctx, 2 * m, device)
    idx = permutation(ref.shape[0], ctx.generator, device)
    ya, yb = ref[idx[:m]], ref[idx[m:2 * m]]
    return {"value": float(loss(x, ya)), "null": float(loss(ya, yb))}


# ---------------------------------------------------------------- sinkhorn

def sinkhorn_divergence(x: Tensor, y: Tensor, *, p: int = 2, blur: float = 0.01,
                        scaling: float = 0.9) -> float:
    r"""Debiased Sinkhorn divergence between the uniform measures on the rows of x and y.

    .. math::
        S_\varepsilon(\alpha, \beta) = \mathrm{OT}_\varepsilon(\alpha, \beta)
            - \tfrac12 \mathrm{OT}_\varepsilon(\alpha, \alpha) - \tfrac12 \mathrm{OT}_\varepsilon(\beta, \beta),
        \qquad \varepsilon = \mathrm{blur}^p,

    with cost ``C(x, y) = |x - y|^2 / 2`` for p = 2 and ``|x - y|`` for p = 1 (geomloss's
    convention: for p = 2 it tends to W_2^2 / 2 as blur -> 0). geomloss ``SamplesLoss``,
    ``backend="tensorized"`` (dense N x M cost matrices, no KeOps), epsilon-scaling ``scaling``;
    float64. A translation ``y = x + c`` gives exactly ``|c|^2 / 2`` for p = 2 (the shift adds a
    separable term to the cost, which no coupling with fixed marginals sees).
    """
    from geomloss import SamplesLoss

    loss = SamplesLoss("sinkhorn", p=p, blur=blur, scaling=scaling, debias=True, backend="tensorized")
    with torch.no_grad():
        return float(loss(x.to(F64).contiguous(), y.to(F64).contiguous()))


class Sinkhorn:
    r"""Debiased Sinkhorn divergence (geomloss) between ``n_mc`` produced and ``n_mc`` reference points.

    PAPER protocol (Sections 4 and 9): p = 2, blur = 0.01, 500 produced vs 500 of the target
    samples. See :func:`sinkhorn_divergence` for the formula (for p = 2 the cost is
    ``|x - y|^2 / 2``, so two Gaussians differing by a shift ``c`` are ~ ``|c|^2 / 2`` apart).

    Keys
    ----
    value : float
        ``S(X, Y_a)``: ``m = min(n_mc, #samples)`` produced points vs ``m`` reference points.
    null : float
        ``S(Y_a, Y_b)`` between two disjoint random subsets of ``m`` reference points (topped
        up with exact target draws from ``ctx.generator`` when the reference has < 2m rows):
        the finite-sample value of a perfect sampler, > 0.

    Parameters
    ----------
    p : int, default 2
        Exponent of the cost (1 or 2).
    blur : float, default 0.01
        Entropic blur; ``epsilon = blur^p``.
    n_mc : int, default 500
        Monte Carlo size: the most produced points compared, with as many reference points.
        A random subset of the samples; ``null`` uses twice as many reference points (the paper:
        500 vs 500).
    scaling : float, default 0.9
        geomloss's epsilon-scaling ratio (closer to 1: more iterations, more accurate).
    """

    higher_is_better = False
    keys = ("value", "null")  # returned by __call__ (checked by bench check)
    #: old param names, answered by `bench check` with the new one
    renamed = {"n": "n_mc"}

    def __init__(self, p: int = 2, blur: float = 0.01, n_mc: int = 500, scaling: float = 0.9) -> None:
        if p not in (1, 2) or isinstance(p, bool):
            raise ValueError(f"parameter 'p' must be 1 or 2, got {p!r}")
        self.p = p
        self.blur = positive_float("blur", blur)
        self.n_mc = tensor_size("n_mc", n_mc, what="the subsample")
        self.scaling = positive_float("scaling", scaling)
        if not self.scaling < 1.0:
            raise ValueError(f"parameter 'scaling' must be in (0, 1), got {scaling!r}")

    def __call__(self, samples: Tensor, ctx: MetricContext) -> dict[str, float]:
        def loss(x: Tensor, y: Tensor) -> float:
            return sinkhorn_divergence(x, y, p=self.p, blur=self.blur, scaling=self.scaling)

        return value_and_null(loss, samples, ctx, self.n_mc, name="sinkhorn")


# ---------------------------------------------------------------- energy

def energy_distance(x: Tensor, y: Tensor) -> float:
    r"""geomloss ``SamplesLoss("energy")``: half the squared kernel norm with ``k(x, y) = -|x - y|``,

    .. math::
        E(\alpha, \beta) = \frac{1}{NM}\sum_{i,j} |x_i - y_j|
            - \frac{1}{2N^2}\sum_{i,i'} |x_i - x_{i'}| - \frac{1}{2M^2}\sum_{j,j'} |y_j - y_{j'}|,

    (V-statistics: the zero diagonal terms included; half of Szekely's energy distance).
    ``backend="tensorized"``, float64. geomloss computes distances as
    ``sqrt(max(|x-y|^2, 1e-8))``, so each diagonal term contributes 1e-4 instead of 0.
    """
    from geomloss import SamplesLoss

    loss = SamplesLoss("energy", backend="tensorized")
    with torch.no_grad():
        return float(loss(x.to(F64).contiguous(), y.to(F64).contiguous()))


class Energy:
    r"""Energy distance (geomloss ``"energy"``, see :func:`energy_distance`) between ``n_mc`` produced
    and ``n_mc`` reference points; ``value`` and ``null`` as for ``sinkhorn``.

    Parameters
    ----------
    n_mc : int, default 2000
        Monte Carlo size: the most produced points compared, with as many reference points.
        A random subset of the samples; ``null`` uses twice as many reference points.
    """

    higher_is_better = False
    keys = ("value", "null")  # returned by __call__ (checked by bench check)
    #: old param names, answered by `bench check` with the new one
    renamed = {"n": "n_mc"}

    def __init__(self, n_mc: int = 2000) -> None:
        self.n_mc = tensor_size("n_mc", n_mc, what="the subsample")

    def __call__(self, samples: Tensor, ctx: MetricContext) -> dict[str, float]:
        return value_and_null(energy_distance, samples, ctx, self.n_mc, name="energy")


# ---------------------------------------------------------------- radius

def _ratio(a: float, b: float) -> float:
    """a / b with 0 / 0 = 1 and a / 0 = inf (a > 0)."""
    if b > 0:
        return a / b
    return 1.0 if a == 0 else math.inf


class Radius:
    r"""Distribution of the radius ``||x||`` of the samples, next to the reference's.

    Descriptive (for N(0, I_d), ``E||x|| = sqrt(2) Gamma((d+1)/2) / Gamma(d/2) ~ sqrt(d - 1/2)``;
    the ball trap keeps particles at radius ~ sqrt(d) instead of ||mu||); only ``rel_gap``
    has a direction (smaller is better), which is why ``higher_is_better`` is False.

    Keys
    ----
    mean, q05, q50, q95 : float
        Mean and 5 / 50 / 95 % quantiles (linear interpolation) of ||x|| over the samples.
    ref_mean, ref_q50 : float
        Mean and median of ||y|| over ``ctx.reference``.
    rel_gap : float
        ``|mean - ref_mean| / ref_mean``.
    """

    higher_is_better = False
    keys = ("mean", "q05", "q50", "q95", "ref_mean", "ref_q50", "rel_gap")  # returned by __call__ (checked by bench check)

    def __call__(self, samples: Tensor, ctx: MetricContext) -> dict[str, float]:
        r = norms64(samples)
        ref = norms64(ctx.reference)
        if r.numel() == 0 or ref.numel() == 0:
            raise SkipMetric("radius needs samples and reference points")
        q = torch.quantile(r, torch.tensor([0.05, 0.5, 0.95], dtype=F64, device=r.device))
        mean, ref_mean = float(r.mean()), float(ref.mean())
        return {"mean": mean, "q05": float(q[0]), "q50": float(q[1]), "q95": float(q[2]),
                "ref_mean": ref_mean, "ref_q50": float(torch.quantile(ref, 0.5)),
                "rel_gap": _ratio(abs(mean - ref_mean), ref_mean)}


# ---------------------------------------------------------------- nearest_train

def nearest_distance(x: Tensor, points: Tensor) -> Tensor:
    """For each row of ``x``, the Euclidean distance to its nearest row of ``points`` (float64).

    Blocks of rows (at most ``2048 * 2048`` distances in memory) go through ``torch.cdist``
    (matrix-product formula, fast); the distance to the selected neighbour is then recomputed
    directly as ``||x - p||``, so a sample equal to a training point gets exactly 0.
    """
    points = points.to(device=x.device, dtype=F64)
    rows = max(1, min(x.shape[0], _NN_BLOCK_ELEMENTS // max(1, points.shape[0])))
    out = []
    for block in torch.split(x, rows):
        block = block.to(F64)  # a block at a time: no float64 copy of all of x
        nearest = torch.cdist(block, points).argmin(dim=1)
        out.append((block - points[nearest]).norm(dim=-1))
    return torch.cat(out) if out else x.new_zeros(0, dtype=F64)


class NearestTrain:
    r"""Memorization: distance of the samples to the training set, relative to fresh draws.

    .. math::
        \mathrm{ratio} = \frac{\mathrm{median}_i \min_j \|x_i - z_j\|}
                              {\mathrm{median}_k \min_j \|y_k - z_j\|}

    over the samples ``x_i``, the distinct training points ``z_j`` (``ctx.data.distinct``) and
    the reference ``y_k`` (exact draws, independent of the training set). ~1 for a sampler
    that does not memorize, 0 when every sample sits on a training point: higher is better
    (less memorized), up to ~1.

    Keys
    ----
    ratio : float
        The ratio above (0 / 0 = 1).
    median, ref_median : float
        Numerator and denominator (medians with linear interpolation, torch.quantile 0.5).
    """

    higher_is_better = True
    keys = ("ratio", "median", "ref_median")  # returned by __call__ (checked by bench check)

    def __call__(self, samples: Tensor, ctx: MetricContext) -> dict[str, float]:
        data = ctx.data
        distinct = getattr(data, "distinct", None) if data is not None else None
        if distinct is None or distinct.shape[0] == 0:
            raise SkipMetric("nearest_train needs training points (ctx.data.distinct is empty)")
        if samples.shape[0] == 0 or ctx.reference.shape[0] == 0:
            raise SkipMetric("nearest_train needs samples and reference points")
        med = float(torch.quantile(nearest_distance(samples.detach(), distinct), 0.5))
        ref_med = float(torch.quantile(nearest_distance(ctx.reference.detach().to(samples.device), distinct), 0.5))
        return {"ratio": _ratio(med, ref_med), "median": med, "ref_median": ref_med}


@hookimpl
def register_metrics(register):
    register("sinkhorn", Sinkhorn,
             description="debiased Sinkhorn divergence (geomloss, p=2, blur 0.01, 500 vs 500) + null")
    register("energy", Energy, description="energy distance (geomloss) between samples and reference + null")
    register("radius", Radius, description="quantiles of ||x|| of samples and reference (descriptive)")
    register("nearest_train", NearestTrain,
             description="median distance to the nearest training point, relative to fresh draws")
