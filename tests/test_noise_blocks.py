"""Block-wise noise draws the very normals one whole-tensor draw would: samplers' numbers do not
depend on the block size."""
from __future__ import annotations

import pytest
import torch

from bench_plugins.samplers.noise_blocks import BlockNoise, block_bounds


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, d", [(1001, 3), (1000, 1), (5000, 50), (17, 1), (5, 2), (2049, 7), (33, 1)])
@pytest.mark.parametrize("block_elements", [64, 256, 1 << 17])
def test_blocks_reproduce_one_draw(n, d, dtype, block_elements, monkeypatch):
    bounds = block_bounds(n, d, block_elements)
    assert bounds[0][0] == 0 and bounds[-1][1] == n and all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert all((hi - lo) % 16 == 0 for lo, hi in bounds[:-1])  # whole groups of 16 normals ...
    assert len(bounds) == 1 or (bounds[-1][1] - bounds[-1][0]) * d >= 16  # ... and a tail torch fills alike
    whole = torch.empty(n, d, dtype=dtype)
    g = torch.Generator().manual_seed(3)
    for _ in range(2):
        whole.normal_(generator=g)
    x = torch.zeros(n, d, dtype=dtype)
    noise = BlockNoise(x)
    noise.bounds = bounds
    noise.buffer = torch.empty(max(hi - lo for lo, hi in bounds), d, dtype=dtype)
    g = torch.Generator().manual_seed(3)
    for step in range(2):
        out = torch.empty(n, d, dtype=dtype)
        for ob, z in noise.blocks(out, generator=g):
            ob.copy_(z)
    assert torch.equal(out, whole)  # the second step's normals, block by block, equal the second draw
    assert [z for *_, z in noise.blocks(x, generator=None)] == [None] * len(bounds)
