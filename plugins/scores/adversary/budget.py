"""The adversary's budget: the squared L2 size of its perturbation, met exactly by a scale factor.

``norm = "zero"``: ``eps_0^2 = E_pi ||delta(x, 0)||^2``, what a Langevin sampler sees.
``norm = "bar"``: ``eps_bar^2 = (1/T) sum_k h_k E_{p_{t_k}} ||delta(x, t_k)||^2`` over the attacked
sampler's own grid ``(t_k, h_k)`` (``T = sum_k h_k``), the quantity in Chen et al. (2023)'s bound;
for a Langevin sampler (one time, t = 0) it is ``eps_0^2``.

Both are estimated on forward-noised target samples ``x_t = e^{-t} x_0 + sqrt(1 - e^{-2t}) z``
with the same ``(x_0, z)`` at every node (common random numbers), and the perturbation is
``delta = sqrt(budget / estimate) * raw``: its estimated size is the budget, whatever the
network. Training draws fresh points at every iteration (the search cannot hide mass in the gaps
of one fixed sample); the trained network's scale is then computed once on a large fixed sample.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from bench_plugins.metrics.score_error import time_blocks

NORMS = ("bar", "zero")


def norm_nodes(grid: list[tuple[float, float]], norm: str, max_nodes: int) -> list[tuple[float, float]]:
    """``(t, weight)`` nodes whose weighted sum is the budget's average (weights sum to 1)."""
    if norm == "zero":
        return [(0.0, 1.0)]
    nodes = time_blocks(grid, max_nodes)
    total = sum(w for _, w in nodes)
    return [(t, w / total) for t, w in nodes if w > 0]


def noise_points(target, n: int, generator: torch.Generator, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``(x_0, z)``: ``n`` target samples and as many standard normals (in ``dtype``)."""
    x0 = target.sample(n, generator).to(dtype)
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    return x0, z


def forward_noised(x0: Tensor, z: Tensor, t: float) -> Tensor:
    """``e^{-t} x_0 + sqrt(1 - e^{-2t}) z``: the OU forward process at time t."""
    return x0 if t == 0 else math.exp(-t) * x0 + math.sqrt(-math.expm1(-2.0 * t)) * z


def squared_size(raw: Callable[[Tensor, float], Tensor], nodes: list[tuple[float, float]], x0: Tensor,
                 z: Tensor) -> Tensor:
    """``sum_nodes w E||raw(x_t, t)||^2`` on the points (a 0-dim tensor, differentiable in ``raw``)."""
    total = x0.new_zeros(())
    for t, weight in nodes:
        total = total + weight * raw(forward_noised(x0, z, t), t).pow(2).sum(-1).mean()
    return total

