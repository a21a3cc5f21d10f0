"""Score ``empirical``: the exact score of the OU-noised empirical distribution of the training set.

With training points ``x_1..x_N``, the forward OU process started at their empirical distribution
has the marginal ``p_t = (1/N) sum_i N(e^{-t} x_i, sigma_t^2 I)``, ``sigma_t^2 = 1 - e^{-2t}``, whose score
is a softmax-weighted pull towards the scaled training points:

    s_t(x) = (e^{-t} sum_i w_i(x) x_i - x) / sigma_t^2,   w_i(x) = softmax_i(-||x - e^{-t} x_i||^2 / (2 sigma_t^2)).

It is the minimizer of the denoising score-matching loss over all functions, i.e. what a network
trained to zero loss on the training set converges to: the fully memorized limit. Wherever the
training points are ``~sqrt(2d)`` apart the softmax is one-hot at small t, so every sampler started
anywhere collapses onto the training points. ``t = 0`` is read at ``t0`` (default: the OU time of
DDPM level ``readout`` = 10, where the paper reads its network), since ``sigma_0 = 0``.

Training rows are duplicated equally (``[data] duplicate``), so the distinct points define the same
distribution; they are used (N times fewer distances). Evaluated in the particles' dtype, chunked over particles
and training points with a running (online) log-sum-exp, so memory stays bounded for any n and N.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from bench_core import Target, TrainingData, hookimpl, positive_float, positive_int

from bench_plugins.samplers.schedules import REFERENCE_LEVELS, level_times

F64 = torch.float64
BLOCK_ELEMENTS = 1 << 22  # particles x training points per distance block (32 MiB in float64)


def empirical_score(x: Tensor, points: Tensor, t: float, *, block_elements: int = BLOCK_ELEMENTS) -> Tensor:
    """The score of ``(1/N) sum_i N(e^{-t} p_i, (1 - e^{-2t}) I)`` at the rows of ``x`` (``t > 0``), in the
    dtype of ``x`` (float32 particles: float32 arithmetic; float64 for exact checks).

    Online softmax over blocks of training points: for each block the running maximum ``m``, the
    running normalizer and the running weighted sum of points are rescaled by ``exp(m_old - m_new)``.
    """
    if not t > 0:
        raise ValueError(f"the empirical score needs t > 0 (sigma_t > 0), got t = {t!r}")
    var = -math.expm1(-2.0 * t)
    dtype = x.dtype if x.dtype in (torch.float32, F64) else torch.float32
    centers = points.to(device=x.device, dtype=dtype) * math.exp(-t)
    # softmax_i(-|x - c_i|^2 / 2v) = softmax_i((<x, c_i> - |c_i|^2 / 2) / v): |x|^2 is the same for every
    # i and drops out, so the logits are one matrix product plus a per-point offset. At level 10 the
    # logits are ~ |x||c| / v ~ 1e4, so float32 rounds them by ~1e-3 (weights off by 0.1%), while
    # neighbouring training points differ by ~ d / v ~ 1e4 in logit: the softmax is unaffected.
    offsets = centers.pow(2).sum(-1).mul_(-0.5 / var)
    floor = -80.0 if dtype == torch.float32 else -700.0  # e^floor is a normal number of the dtype
    cols = max(1, min(centers.shape[0], 4096))
    rows = max(1, block_elements // cols)
    out = torch.empty(x.shape, dtype=dtype, device=x.device)
    for start in range(0, x.shape[0], rows):
        xb = x[start:start + rows].to(dtype)
        top = torch.full((xb.shape[0], 1), -math.inf, dtype=dtype, device=x.device)
        norm = torch.zeros((xb.shape[0], 1), dtype=dtype, device=x.device)
        pull = torch.zeros_like(xb)
        for block, offset in zip(torch.split(centers, cols), torch.split(offsets, cols)):
            logits = torch.addmm(offset, xb, block.T, alpha=1.0 / var)
            new_top = torch.maximum(top, logits.amax(dim=1, keepdim=True))
            rescale = torch.exp(top - new_top)
            # weights below e^floor are raised to it: exp of large negative arguments takes a slow
            # (subnormal) path, and N e^floor is negligible against the top weight 1
            weights = logits.sub_(new_top).clamp_(min=floor).exp_()
            norm.mul_(rescale).add_(weights.sum(dim=1, keepdim=True))
            pull.mul_(rescale).addmm_(weights, block)
            top = new_top
        out[start:start + xb.shape[0]] = (pull / norm - xb) / var
    return out


class EmpiricalScore:
    """The fully memorized score (see the module docstring).

    Parameters
    ----------
    readout : int, default 10
        ``t = 0`` is read at the OU time of this DDPM level of 1000 (default 10); refused with ``t0``.
    t0 : float, optional
        The time read at ``t = 0`` (> 0), in place of ``readout``'s.
    """

    rowwise = True  # each point's softmax over the training points: no coupling between particles

    def __init__(self, target: Target, data: TrainingData, readout: Optional[int] = None,
                 t0: Optional[float] = None) -> None:
        if readout is not None and t0 is not None:
            raise ValueError("parameter 'readout' is not used when t0 is given (t0 is then the time read at t = 0); "
                             "remove one of them")
        readout = positive_int("readout", 10 if readout is None else readout)
        if readout > REFERENCE_LEVELS:
            raise ValueError(f"parameter 'readout' must be a level in 1..{REFERENCE_LEVELS}, got {readout!r}")
        self.t0 = level_times()[readout - 1] if t0 is None else positive_float("t0", t0)
        self.points = data.distinct

    def __call__(self, x: Tensor, t: float) -> Tensor:
        return empirical_score(x, self.points, self.t0 if t == 0 else float(t)).to(x.dtype)


@hookimpl
def register_scores(register):
    register("empirical", EmpiricalScore,
             description="exact score of the OU-noised empirical training distribution (fully memorized limit)")
