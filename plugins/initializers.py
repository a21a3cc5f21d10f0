"""Initializers: where Langevin-family samplers start."""
from __future__ import annotations

import torch
from torch import Tensor

from bench_core import hookimpl
from bench_core.protocols import Target, TrainingData


class StandardNormal:
    """``N(0, I_d)`` starting points (also the diffusion prior, labelled "prior")."""

    def __call__(self, n: int, *, target: Target, data: TrainingData, generator: torch.Generator) -> Tensor:
        return torch.randn(n, target.dim, generator=generator, device=generator.device,
                           dtype=torch.get_default_dtype())


@hookimpl
def register_initializers(register):
    register("standard_normal", StandardNormal, description="N(0, I) starting points")
