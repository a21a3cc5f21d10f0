"""A "trained network" for the ``network`` score tests: the exact eps (or score) of N(mean * 1, I).

For the target N(m, I) the OU marginal is p_t = N(e^{-t} m, I), so grad log p_t(x) = -(x - e^{-t} m)
and the noise a DDPM network predicts is eps = -sigma_t grad log p_t(x), sigma_t = sqrt(1 - e^{-2t}).
``scale`` is a learnable parameter (ones) so a state_dict can be saved and loaded.
"""
from __future__ import annotations

import torch
from torch import nn

from bench_plugins.samplers.schedules import level_times

LEVEL_TIMES = torch.tensor(level_times(), dtype=torch.float64)


class GaussianEps(nn.Module):
    def __init__(self, dim: int, mean: float = 0.0, output: str = "eps", time: str = "t") -> None:
        super().__init__()
        self.register_buffer("mean", torch.full((dim,), float(mean)))
        self.scale = nn.Parameter(torch.ones(dim))
        self.output, self.time = output, time

    def forward(self, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        tau = tau.to(torch.float64)
        if self.time == "t":
            t = tau
        elif self.time == "sigma":
            t = -0.5 * torch.log1p(-tau**2)
        else:
            t = LEVEL_TIMES[tau.long() - 1]
        score = -(x - torch.exp(-t)[:, None].to(x) * self.mean) * self.scale
        if self.output == "score":
            return score
        return -torch.sqrt(-torch.expm1(-2.0 * t))[:, None].to(x) * score


def make_gaussian_eps(dim: int, mean: float = 0.0) -> GaussianEps:
    """A factory function (the ``model`` param may name a function returning a module)."""
    return GaussianEps(dim, mean)


class WrongShape(nn.Module):
    """Returns one column too many: cells using it must fail with both shapes in the reason."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], self.dim + 1, dtype=x.dtype)


def write_marker(path: str) -> None:
    """A plain function with a side effect: a suite must never make bench call it."""
    with open(path, "w") as handle:
        handle.write("called")


class Trapdoor:
    """A class whose attribute lookup would run code if read with ``getattr``."""

    @property
    def opened(self) -> None:
        raise RuntimeError("a suite's model lookup ran a property")
