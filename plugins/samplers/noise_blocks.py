"""Sampler updates a block of rows at a time, so the drift and the noise never leave the CPU cache.

A sampler step ``x <- c_x x + c_s s(x) + sigma z`` done as whole-tensor operations streams ``x``, an
``[n, d]`` drift and an ``[n, d]`` noise tensor through memory several times; at n = 1e5, d = 50
(20 MB per tensor, against a 32 MB L3 cache) that costs as much as drawing the normals.
:meth:`BlockNoise.steps` hands the update out in blocks of rows: each block's noise is freshly drawn
into one small buffer and, for a score estimate that declares ``rowwise = True`` (row i of
``s(x, t)`` depends on ``x[i]`` alone, see :class:`bench_core.ScoreEstimate`), its drift is
evaluated on the block's rows only. Only ``x`` itself streams through memory, and no ``[n, d]``
temporary exists (200 MB each at n = 1e6). A score without the declaration is evaluated once on all
rows, then sliced: same numbers, more memory traffic.

The normals are exactly those of one ``normal_`` call on the whole ``[n, d]`` tensor (same
generator, same order), so the samplers' numbers do not change: torch's CPU ``normal_`` fills
groups of 16 values from consecutive uniforms, and every block but the last holds a multiple of
16 values (the last keeps the whole tensor's remainder, and at least 16 values).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

import torch
from torch import Tensor

# values per block: 1 MiB in float32. The block's x, drift and noise (3 MiB) sit in L2/L3 next to x;
# larger blocks leave cache, smaller ones pay more per-block Python and score-call overhead
# (~20 blocks per step at n = 1e5, d = 50)
BLOCK_ELEMENTS = 1 << 18


def block_bounds(n: int, d: int, block_elements: Optional[int] = None) -> list[tuple[int, int]]:
    """Row ranges ``[lo, hi)`` covering ``0..n``: multiples of 16 rows, the last with >= 16 values
    (``block_elements`` values per block, default :data:`BLOCK_ELEMENTS`)."""
    block_elements = BLOCK_ELEMENTS if block_elements is None else block_elements
    rows = max(16, (block_elements // max(d, 1)) // 16 * 16)
    edges = list(range(0, n, rows)) + [n]
    pairs = list(zip(edges[:-1], edges[1:]))
    if len(pairs) >= 2 and (pairs[-1][1] - pairs[-1][0]) * d < 16:
        pairs[-2:] = [(pairs[-2][0], n)]  # a tail under 16 values would take torch's scalar path
    return pairs


class BlockNoise:
    """Block-wise access to ``[n, d]`` tensors with a standard-normal block drawn for each.

    Parameters
    ----------
    like : Tensor
        The particles ``[n, d]``: the noise has their dtype and device.
    """

    def __init__(self, like: Tensor) -> None:
        n, d = like.shape
        # on a GPU memory traffic is not the bottleneck: one block, the whole tensor
        self.bounds = block_bounds(n, d) if like.device.type == "cpu" else [(0, n)]
        rows = max((hi - lo for lo, hi in self.bounds), default=0)
        self.buffer = torch.empty(rows, d, dtype=like.dtype, device=like.device)

    def blocks(self, *tensors: Tensor, generator: Optional[torch.Generator]) -> Iterator[tuple[Tensor, ...]]:
        """For each block: the block's rows of every tensor (views: update them in place) and, last,
        fresh N(0, I) noise for it, or None when ``generator`` is None (a step without noise)."""
        for lo, hi in self.bounds:
            noise = None
            if generator is not None:
                noise = self.buffer[: hi - lo]
                noise.normal_(generator=generator)
            yield (*(t[lo:hi] for t in tensors), noise)

    def steps(self, score: Any, x: Tensor, t: float, *,
              generator: Optional[torch.Generator]) -> Iterator[tuple[Tensor, Tensor, Optional[Tensor]]]:
        """For each block: ``(x rows, s(x rows, t), noise)``; update the x rows in place."""
        return self.evaluated(lambda xb: score(xb, t), x, rowwise=is_rowwise(score), generator=generator)

    def evaluated(self, fn: Callable[..., Tensor], *tensors: Tensor, rowwise: bool,
                  generator: Optional[torch.Generator]) -> Iterator[tuple[Tensor, ...]]:
        """For each block: the rows of every tensor, ``fn`` of those rows, and the noise (or None).

        With ``rowwise``, ``fn`` is called once per block, before the block's rows change (no other
        block's rows are read, so updating earlier blocks in place is safe); otherwise it is called
        once on the whole tensors first and its result sliced. ``fn`` must draw nothing from
        ``generator``: the noise is then that of one whole-tensor draw either way.
        """
        if rowwise:
            for *rows, z in self.blocks(*tensors, generator=generator):
                yield (*rows, fn(*rows), z)
        else:
            yield from self.blocks(*tensors, fn(*tensors), generator=generator)


def is_rowwise(score: Any) -> bool:
    """Whether ``score`` declares that each row of its value depends on that row alone."""
    return bool(getattr(score, "rowwise", False))
