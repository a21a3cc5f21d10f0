"""Float64 statistics of large particle sets, a block of rows at a time.

Metrics compute in float64, but converting all of a 1e6 x 50 float32 sample at once costs 400 MB
(twice the particles). These helpers convert ``BLOCK_ROWS`` rows at a time (25 MB at d = 50), so a
metric's memory does not grow with n beyond its own O(n) outputs.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

F64 = torch.float64
BLOCK_ROWS = 1 << 16


def float64_blocks(x: Tensor) -> Iterator[Tensor]:
    """The rows of ``x`` in float64, ``BLOCK_ROWS`` at a time (views of ``x`` when it is float64
    already: never modify them in place)."""
    for block in torch.split(x.detach(), BLOCK_ROWS):
        yield block.to(F64)


def mean64(x: Tensor) -> Tensor:
    """The float64 mean of the rows of ``x`` (shape ``[d]``)."""
    total = torch.zeros(x.shape[1], dtype=F64, device=x.device)
    for block in float64_blocks(x):
        total += block.sum(0)
    return total / x.shape[0]


def scatter64(x: Tensor, center: Tensor) -> Tensor:
    """``sum_i (x_i - center)(x_i - center)^T`` in float64 (two-pass covariance: no cancellation)."""
    out = torch.zeros(x.shape[1], x.shape[1], dtype=F64, device=x.device)
    for block in float64_blocks(x):
        centered = block - center
        out += centered.T @ centered
    return out


def norms64(x: Tensor) -> Tensor:
    """``||x_i||`` in float64, shape ``[n]``."""
    return torch.cat([block.norm(dim=-1) for block in float64_blocks(x)]) if x.shape[0] else x.new_zeros(0, dtype=F64)
