"""Sample-quality metrics from the samples and the reference points alone (no closed form of the target).

- ``frechet``: the Frechet distance between the Gaussian fits of the samples and of the reference (the
  FID formula of Heusel et al. 2017 on raw coordinates), with a same-distribution ``null``.
- ``precision_recall``: k-nearest-neighbour manifold precision and recall (Kynkaanniemi et al. 2019).

Both read ``ctx.reference`` only, so they apply to sample-only targets (data sets). Every subset is
chosen with ``ctx.generator`` permutations; computations are float64.
"""
from __future__ import annotations

import torch
from torch import Tensor

from bench_core import MetricContext, SkipMetric, hookimpl, positive_int, tensor_size

from .distances import checked_samples, permutation, value_and_null
from .float64_blocks import mean64, scatter64

F64 = torch.float64
BLOCK_ELEMENTS = 1 << 22  # pairwise distances in memory at once (32 MiB in float64)


def _subset(x: Tensor, m: int, gen: torch.Generator) -> Tensor:
    """``m`` random rows of ``x`` (a permutation drawn from ``gen``), in float64."""
    return x[permutation(x.shape[0], gen, x.device)[:m]].to(F64)


# ---------------------------------------------------------------- frechet

def _psd_sqrt(s: Tensor) -> Tensor:
    """The symmetric square root of a symmetric PSD matrix (eigh; eigenvalues clipped at 0)."""
    vals, vecs = torch.linalg.eigh(s)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_gaussians(mu1: Tensor, s1: Tensor, mu2: Tensor, s2: Tensor) -> float:
    r"""The Frechet (2-Wasserstein squared) distance between ``N(mu1, s1)`` and ``N(mu2, s2)``.

    .. math::
        d^2 = \|\mu_1 - \mu_2\|^2 + \mathrm{tr}\big(S_1 + S_2 - 2 (S_1^{1/2} S_2 S_1^{1/2})^{1/2}\big)

    (Dowson & Landau 1982). ``tr (S1^{1/2} S2 S1^{1/2})^{1/2}`` is the sum of the square roots of the
    eigenvalues of the symmetric PSD matrix ``S1^{1/2} S2 S1^{1/2}`` (clipped at 0), computed with
    ``eigh`` in float64: no complex ``sqrtm`` of the non-symmetric ``S1 S2`` as in FID code. Rounding can
    leave ~1e-15 below 0 for equal inputs; the result is clipped at 0 (a distance).
    """
    mu1, s1, mu2, s2 = (v.to(F64) for v in (mu1, s1, mu2, s2))
    root = _psd_sqrt(s1)
    middle = root @ s2 @ root
    cross = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    value = (mu1 - mu2).pow(2).sum() + torch.trace(s1) + torch.trace(s2) - 2.0 * cross
    return max(float(value), 0.0)


def gaussian_fit(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and unbiased (``1/(n-1)``, as ``numpy.cov`` in FID code) covariance of the rows, float64."""
    mu = mean64(x)
    return mu, scatter64(x, mu) / (x.shape[0] - 1)


def frechet_distance(x: Tensor, y: Tensor) -> float:
    """:func:`frechet_gaussians` between the Gaussian fits of the rows of ``x`` and of ``y``."""
    return frechet_gaussians(*gaussian_fit(x), *gaussian_fit(y))


class Frechet:
    r"""Frechet distance between Gaussian fits of the samples and of the reference (FID on raw coordinates).

    Heusel, Ramsauer, Unterthiner, Nessler, Hochreiter (2017), "GANs trained by a two time-scale update
    rule converge to a local Nash equilibrium" (FID), with the closed form of Dowson & Landau (1982); see
    :func:`frechet_gaussians`. Here on the raw coordinates (no Inception features). Only the first two
    moments are compared: 0 for any two laws with equal mean and covariance.

    Keys
    ----
    value : float
        ``d^2(X, Y_a)``: ``m`` random samples vs ``m`` random reference points.
    null : float
        ``d^2(Y_a, Y_b)`` between two disjoint random subsets of ``m`` reference points: the value of
        exact samples, the finite-sample floor (about ``2 tr S / m`` from the means plus
        ``~ d(d+1) |S| / (2m)`` from the covariances; 0.006 for ``N(0, I_3)``, m = 2000).

    ``m = min(n_mc, #samples, #reference // 2)``: when the reference has fewer than ``2 n_mc`` rows, value
    and null both use half of it, so they are on an equal footing (the estimator's bias depends on m).
    The reference is never topped up from the target (data sets have no more).

    Parameters
    ----------
    n_mc : int, default 2000
        The most samples, and reference points per half, compared.
    """

    higher_is_better = False
    keys = ("value", "null")  # returned by __call__ (checked by bench check)

    def __init__(self, n_mc: int = 2000) -> None:
        self.n_mc = tensor_size("n_mc", n_mc, what="the subsample")

    def __call__(self, samples: Tensor, ctx: MetricContext) -> dict[str, float]:
        return value_and_null(frechet_distance, samples, ctx, self.n_mc, name="frechet", minimum=2, top_up=False)


# ---------------------------------------------------------------- precision / recall

def _row_blocks(x: Tensor, columns: int, block_elements: int) -> tuple[Tensor, ...]:
    rows = max(1, block_elements // max(1, columns))
    return torch.split(x, rows)


def kth_neighbour_radii(x: Tensor, k: int, *, block_elements: int = BLOCK_ELEMENTS) -> Tensor:
    """For each row of ``x``, the distance to its k-th nearest other row (float64, ``[n]``).

    ``torch.cdist`` a block of rows at a time (at most ``block_elements`` distances in memory); the
    ``(k+1)``-th smallest distance of a row skips the point itself (distance 0; an exact duplicate
    also at 0 counts as a neighbour, as it should).
    """
    x = x.to(F64)
    if x.shape[0] <= k:
        raise SkipMetric(f"precision_recall needs more than k = {k} points per set, got {x.shape[0]}")
    out = [torch.cdist(block, x).kthvalue(k + 1, dim=1).values for block in _row_blocks(x, x.shape[0], block_elements)]
    return torch.cat(out)


def inside_manifold(queries: Tensor, centers: Tensor, radii: Tensor, *,
                    block_elements: int = BLOCK_ELEMENTS) -> Tensor:
    """Whether each query lies in the union of the closed balls ``B(centers_j, radii_j)`` (BoolTensor ``[n]``)."""
    centers, radii = centers.to(F64), radii.to(F64)
    out = [(torch.cdist(block.to(F64), centers) <= radii[None, :]).any(dim=1)
           for block in _row_blocks(queries, centers.shape[0], block_elements)]
    return torch.cat(out)


def manifold_precision_recall(fake: Tensor, real: Tensor, k: int = 3, *,
                              block_elements: int = BLOCK_ELEMENTS) -> tuple[float, float]:
    r"""Improved precision and recall (Kynkaanniemi, Karras, Laine, Lehtinen, Aila 2019).

    .. math::
        \mathrm{precision} = \frac1{|F|}\sum_{f \in F} 1[f \in M(R)], \quad
        \mathrm{recall} = \frac1{|R|}\sum_{r \in R} 1[r \in M(F)], \quad
        M(S) = \bigcup_{s \in S} B\big(s, \mathrm{NN}_k(s, S)\big)

    with ``NN_k(s, S)`` the distance from s to its k-th nearest neighbour in S (s itself excluded).
    Memory O(block x n) (see :func:`kth_neighbour_radii`).
    """
    fake, real = fake.to(F64), real.to(F64)
    real_radii = kth_neighbour_radii(real, k, block_elements=block_elements)
    fake_radii = kth_neighbour_radii(fake, k, block_elements=block_elements)
    precision = inside_manifold(fake, real, real_radii, block_elements=block_elements).double().mean()
    recall = inside_manifold(real, fake, fake_radii, block_elements=block_elements).double().mean()
    return float(precision), float(recall)


class PrecisionRecall:
    r"""k-NN manifold precision and recall of the samples against the reference (Kynkaanniemi et al. 2019).

    "Improved precision and recall metric for assessing generative models" (NeurIPS 2019), on raw
    coordinates: see :func:`manifold_precision_recall`. Precision: the fraction of samples that look
    like data (inside the reference's k-NN manifold); recall: the fraction of the data the samples
    cover (reference points inside the samples' manifold). A sampler that drops a mode keeps its
    precision and loses recall; one that spreads mass between modes loses precision.

    For two samples of one law (n = 2000, k = 3, low d) both are ~0.96-0.98 (the rest: tail points
    outside the other set's balls); samples from one of two equal, well separated modes: precision
    ~0.97, recall ~0.5 x 0.97.

    Keys
    ----
    precision, recall : float
        In [0, 1]; higher is better.

    Parameters
    ----------
    k : int, default 3
        The neighbour that sets each ball's radius (the paper's 3).
    n_mc : int, default 2000
        The most samples, and the most reference points, used (random subsets); the cost is O(n_mc^2 d).
    """

    higher_is_better = True
    keys = ("precision", "recall")  # returned by __call__ (checked by bench check)

    def __init__(self, k: int = 3, n_mc: int = 2000) -> None:
        self.k = positive_int("k", k)
        self.n_mc = tensor_size("n_mc", n_mc, what="the subsample")

    def __call__(self, samples: Tensor, ctx: MetricContext) -> dict[str, float]:
        samples = checked_samples(samples, "precision_recall", max(2, self.k + 1))
        ref = ctx.reference.detach()
        if ref.shape[0] <= self.k:
            raise SkipMetric(f"precision_recall needs more than k = {self.k} reference points, got {ref.shape[0]}")
        fake = _subset(samples, min(self.n_mc, samples.shape[0]), ctx.generator)
        real = _subset(ref, min(self.n_mc, ref.shape[0]), ctx.generator).to(samples.device)
        precision, recall = manifold_precision_recall(fake, real, self.k)
        return {"precision": precision, "recall": recall}


@hookimpl
def register_metrics(register):
    register("frechet", Frechet,
             description="Frechet distance of Gaussian fits (FID formula, raw coordinates) vs reference + null")
    register("precision_recall", PrecisionRecall,
             description="k-NN manifold precision and recall vs the reference (Kynkaanniemi et al. 2019)")
