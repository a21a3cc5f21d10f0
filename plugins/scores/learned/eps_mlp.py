"""The paper's noise-prediction network: an MLP ``eps_theta(x_k, k)`` with a sinusoidal level embedding.

Cao, Chen, Sridharan, Wu (2026), Section 4, train "an MLP with 3 hidden layers" on inputs
``(x_t, noise level)``; they do not say how the level enters. bench's documented choice:
the DDPM level ``k`` (1..1000) goes through the sinusoidal embedding of Vaswani et al.
(2017), as in Ho et al. (2020), with ``embed`` features, concatenated to ``x``; hidden layers
use SiLU. The module is called as ``model(x, level)`` with ``x: [n, d]`` and ``level: [n]``
(float: the level index), so a cached ``ddpm_mlp`` can be loaded back through the ``network``
score with ``model = "bench_plugins.scores.learned.eps_mlp:EpsMLP"``, ``time = "level"``, ``output = "eps"``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

#: the period scale of the sinusoidal embedding (Vaswani et al. 2017)
EMBED_MAX_PERIOD = 10_000.0


def level_embedding(level: Tensor, features: int) -> Tensor:
    """``[sin(k w_j), cos(k w_j)]_{j < features/2}`` with ``w_j = 10000^{-j/(features/2)}``: ``[n, features]``.

    The frequencies span one radian per level (``w_0 = 1``) down to ``1e-4`` per level, so both
    neighbouring levels and the whole range 1..1000 are told apart.
    """
    half = features // 2
    freqs = torch.exp(-math.log(EMBED_MAX_PERIOD) * torch.arange(half, dtype=level.dtype, device=level.device) / half)
    angles = level[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class EpsMLP(nn.Module):
    """``eps_theta(x, k)``: ``[x, embed(k)] -> depth x (Linear(width), SiLU) -> Linear(dim)``.

    Parameters
    ----------
    dim : int
        Data dimension d.
    width : int, default 256
        Hidden width (the paper: 256 for the Gaussian target, 512 for the mixture).
    depth : int, default 3
        Number of hidden layers (the paper: 3).
    embed : int, default 32
        Features of the level embedding (even).
    """

    def __init__(self, dim: int, width: int = 256, depth: int = 3, embed: int = 32) -> None:
        super().__init__()
        if embed % 2:
            raise ValueError(f"parameter 'embed' must be even, got {embed!r}")
        self.dim, self.width, self.depth, self.embed = dim, width, depth, embed
        layers: list[nn.Module] = []
        fan_in = dim + embed
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), nn.SiLU()]
            fan_in = width
        layers.append(nn.Linear(fan_in, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, level: Tensor) -> Tensor:
        return self.net(torch.cat([x, level_embedding(level.to(x.dtype), self.embed)], dim=1))
