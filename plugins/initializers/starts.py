"""Initializers: where Langevin-family samplers start.

``fresh`` and ``train`` reproduce the starts of Cao et al. (2026), Section 4: a few
distinct points, each repeated to fill the particle budget. Starting at the training
points that built a memorized score is the failure case of Theorem 7; fresh draws from
the target are the paper's practical remedy.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from bench_core import Target, TrainingData, hookimpl, positive_int, vector


def _fill(points: Tensor, n: int) -> Tensor:
    """Repeat ``k`` points to ``n`` rows, grouped and as balanced as possible."""
    index = torch.arange(n, device=points.device) * points.shape[0] // n
    return points[index].clone()


def _choose(pool: Tensor, k: int, generator: torch.Generator, what: str, fix: str) -> Tensor:
    """``k`` rows of ``pool`` chosen without replacement, in the default dtype."""
    if k > pool.shape[0]:
        raise ValueError(f"distinct = {k} exceeds the {pool.shape[0]} {what}; {fix}")
    chosen = torch.randperm(pool.shape[0], generator=generator, device=generator.device)[:k]
    return pool[chosen.to(pool.device)].to(torch.get_default_dtype())


class StandardNormal:
    """``N(0, I_d)`` starting points (also the diffusion prior, labelled "prior")."""

    def __call__(self, n: int, *, target: Target, data: TrainingData, generator: torch.Generator) -> Tensor:
        return torch.randn(n, target.dim, generator=generator, device=generator.device,
                           dtype=torch.get_default_dtype())


class Fresh:
    """``distinct`` fresh exact draws from the target (not the training set), each repeated; for a finite
    data set, ``distinct`` of its held-out rows (chosen without replacement).

    Parameters
    ----------
    distinct : int, default 30
        Number of distinct starting points (the paper: 30), each repeated to fill the particles.
    """

    def __init__(self, distinct: int = 30) -> None:
        self.distinct = positive_int("distinct", distinct)

    def __call__(self, n: int, *, target: Target, data: TrainingData, generator: torch.Generator) -> Tensor:
        if data.heldout is None:
            return _fill(target.sample(self.distinct, generator), n)
        return _fill(_choose(data.heldout, self.distinct, generator, "held-out rows of the data set",
                             "lower 'distinct' or raise the target's holdout"), n)


class Train:
    """``distinct`` of the distinct training points (chosen without replacement), each repeated.

    Parameters
    ----------
    distinct : int, default 30
        Number of training points started from (the paper: 30), each repeated to fill the particles.
    """

    def __init__(self, distinct: int = 30) -> None:
        self.distinct = positive_int("distinct", distinct)

    def __call__(self, n: int, *, target: Target, data: TrainingData, generator: torch.Generator) -> Tensor:
        return _fill(_choose(data.distinct, self.distinct, generator, "distinct training points",
                             "lower 'distinct' or raise [data] n_train"), n)


class Point:
    """Every particle starts at ``x`` (a scalar a means a * ones(d), or a list of length d).

    Parameters
    ----------
    x : float or list of float, default 0.0
        The starting point.
    """

    def __init__(self, x: Any = 0.0) -> None:
        self.x = x
        if isinstance(x, (list, tuple)):
            vector("x", x, len(x))  # validate the entries now; the length is checked against d per cell
        else:
            vector("x", x, 1)

    def __call__(self, n: int, *, target: Target, data: TrainingData, generator: torch.Generator) -> Tensor:
        point = vector("x", self.x, target.dim).to(device=generator.device, dtype=torch.get_default_dtype())
        return point.expand(n, -1).clone()


@hookimpl
def register_initializers(register):
    register("standard_normal", StandardNormal, description="N(0, I) starting points")
    register("fresh", Fresh, description="`distinct` fresh target draws, each repeated")
    register("train", Train, description="`distinct` training points, each repeated (Theorem 7 start)")
    register("point", Point, description="all particles at one point x")
