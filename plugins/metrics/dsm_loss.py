"""``dsm_loss``: the denoising score-matching loss of a learned score on its training rows and on held-out rows.

Denoising score matching (Vincent 2011) in the epsilon form a DDPM network is trained with (Ho, Jain,
Abbeel 2020, Algorithm 1): for a row ``x_0``, an OU time ``t`` with ``a = e^{-t}``, ``s = sqrt(1 - e^{-2t})``
and ``z ~ N(0, I_d)``, ``x_t = a x_0 + s z`` and

    loss = mean over rows, levels and draws of ||s * score(x_t, t) + z||^2 / d.

For ``ddpm_mlp`` (``score = -eps_theta / s``) the term is ``||z - eps_theta(x_t, k)||^2 / d``: exactly what
:mod:`bench_plugins.scores.learned.ddpm_training` minimizes (``(eps_theta - eps)^2`` averaged over rows and
coordinates), so ``train`` with every trained level is an unbiased estimate of the training objective
(the final training loss estimates it too, from one draw per row). Its minimum over all functions is
not 0: the exact score of the noised data law leaves ``1 - s^2 / v_t`` per coordinate for ``N(m, sigma^2)``
data (``v_t = a^2 sigma^2 + s^2``). A network that memorized its training rows has a lower loss there
than on fresh rows of the same law: ``gap = heldout - train`` is its generalization gap.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor

from bench_core import MetricContext, SkipMetric, hookimpl, tensor_size

from bench_plugins.samplers.schedules import REFERENCE_LEVELS, evenly_spaced_levels, level_times, ou_coefficients

F64 = torch.float64
BLOCK_ROWS = 4096  # rows per score call: bounded activations for any n_mc


def trained_times(score: Any) -> list[float]:
    """The OU times a learned score was trained at, increasing.

    The generic route: a score method ``training_times() -> list[float]`` (OU times > 0). Otherwise
    ``ddpm_mlp``'s attribute ``levels`` (an int K: trained on DDPM levels 1..K of the 1000-level linear
    schedule, whose times are :func:`~bench_plugins.samplers.schedules.level_times`). Neither: SkipMetric.
    """
    method = getattr(score, "training_times", None)
    if callable(method):
        times = [float(t) for t in method()]
        if not times or not all(math.isfinite(t) and t > 0 for t in times):
            raise ValueError(f"score {type(score).__name__}.training_times() must return OU times > 0, got {times!r}")
        return sorted(set(times))
    levels = getattr(score, "levels", None)
    if isinstance(levels, int) and not isinstance(levels, bool) and 1 <= levels <= REFERENCE_LEVELS:
        return level_times()[:levels]
    raise SkipMetric("dsm_loss applies to learned scores trained on noise levels (ddpm_mlp, or a score with "
                     f"training_times()); {type(score).__name__} has neither 'levels' nor training_times()")


def chosen_times(times: list[float], n_levels: int) -> list[float]:
    """``min(n_levels, len(times))`` of ``times``, evenly spaced by index, always the first and the last."""
    n = min(n_levels, len(times))
    return [times[k - 1] for k in sorted(evenly_spaced_levels(n, len(times)))]


def dsm_losses(score: Any, row_sets: list[Tensor], times: list[float], generator: torch.Generator,
               *, block_rows: int = BLOCK_ROWS) -> list[float]:
    """The epsilon-form DSM loss (module docstring) of ``score`` on each set of rows ``x_0``.

    One noise draw per row and time; row ``i`` of every set gets the same ``z_i`` at a time (common
    random numbers: differences between sets do not carry the noise's variance). ``z`` is drawn from
    ``generator`` one time at a time (``[max rows, d]``), in the default dtype; the score is called
    ``block_rows`` rows at a time, without gradients, and the squares are summed in float64.
    """
    device = row_sets[0].device
    dim = row_sets[0].shape[1]
    rows = max(x.shape[0] for x in row_sets)
    dtype = torch.get_default_dtype()
    sums = [torch.zeros((), dtype=F64, device=device) for _ in row_sets]
    with torch.no_grad():
        for t in times:
            a, s = ou_coefficients(t)
            z = torch.randn(rows, dim, generator=generator, device=generator.device, dtype=dtype).to(device)
            for i, x0 in enumerate(row_sets):
                for start in range(0, x0.shape[0], block_rows):
                    zb = z[start:start + block_rows][: x0.shape[0] - start]
                    xt = a * x0[start:start + zb.shape[0]] + s * zb
                    out = score(xt, t)
                    sums[i] += (s * out.to(F64) + zb.to(F64)).pow(2).sum()
    return [float(total) / (x.shape[0] * dim * len(times)) for total, x in zip(sums, row_sets)]


class DSMLoss:
    r"""Denoising score-matching loss of the cell's learned score on training and held-out rows.

    See the module docstring for the loss: ``mean ||s score(a x_0 + s z, t) + z||^2 / d`` over rows,
    evaluated levels and one draw of ``z`` per row and level (normalized per coordinate, as the DDPM
    training loss). The levels are the score's trained ones (``training_times()`` or ``ddpm_mlp``'s
    ``levels``); every level gets the same weight, like the uniform level of training. The samples are
    not used: the metric measures the score (the same value at every checkpoint of a cell).

    Keys
    ----
    train : float
        On ``ctx.data.distinct`` (the distinct training rows; duplicates weigh equally in training, so
        the expectation is the same).
    heldout : float
        On ``ctx.data.heldout`` when the data set has held-out rows, else on ``ctx.reference`` (fresh
        draws of the target): rows the network never saw.
    gap : float
        ``heldout - train`` (same levels, same noise): ~0 for a score that generalizes, > 0 for one that
        memorized its training rows.

    Parameters
    ----------
    n_mc : int, default 2000
        The most rows used from each set (a random subset drawn with ``ctx.generator``).
    n_levels : int, default 20
        Levels evaluated: ``min(n_levels, trained)`` evenly spaced among the trained ones (deterministic;
        the lowest and the highest always). With ``n_levels >= trained`` every trained level is used and
        ``train`` estimates the training objective without bias.
    """

    higher_is_better = False
    keys = ("train", "heldout", "gap")  # returned by __call__ (checked by bench check)

    def __init__(self, n_mc: int = 2000, n_levels: int = 20) -> None:
        self.n_mc = tensor_size("n_mc", n_mc, what="the subsample")
        self.n_levels = tensor_size("n_levels", n_levels, what="the levels evaluated")

    def _rows(self, x: Optional[Tensor], what: str, ctx: MetricContext, device: torch.device) -> Tensor:
        if x is None or x.shape[0] == 0:
            raise SkipMetric(f"dsm_loss needs {what}")
        x = x.detach()
        idx = torch.randperm(x.shape[0], generator=ctx.generator, device=ctx.generator.device)[:self.n_mc]
        return x[idx.to(x.device)].to(device=device, dtype=torch.get_default_dtype())

    def __call__(self, samples: Tensor, ctx: MetricContext) -> dict[str, float]:
        times = chosen_times(trained_times(ctx.score), self.n_levels)
        data = ctx.data
        distinct = getattr(data, "distinct", None) if data is not None else None
        device = distinct.device if distinct is not None else samples.device
        train = self._rows(distinct, "training rows (ctx.data.distinct)", ctx, device)
        held = getattr(data, "heldout", None) if data is not None else None
        held = self._rows(ctx.reference if held is None else held, "held-out or reference rows", ctx, device)
        loss_train, loss_held = dsm_losses(ctx.score, [train, held], times, ctx.generator)
        return {"train": loss_train, "heldout": loss_held, "gap": loss_held - loss_train}


@hookimpl
def register_metrics(register):
    register("dsm_loss", DSMLoss,
             description="denoising score-matching loss of a learned score on training vs held-out rows (+ gap)")
