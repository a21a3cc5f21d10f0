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


class _Counted:
    """A Gaussian-target score that records the rows of every call; ``rowwise`` as given."""

    def __init__(self, rowwise: bool, mean: float = 1.5, var: float = 0.49) -> None:
        self.rowwise, self.mean, self.var, self.rows = rowwise, mean, var, []

    def __call__(self, x, t):
        self.rows.append(x.shape[0])
        return (self.mean - x) / self.var


@pytest.mark.parametrize("sampler, params", [
    ("ula", {"n_steps": 7}), ("ddpm", {"n_steps": 30}), ("ddpm", {"discretization": "exponential", "n_steps": 7}),
    ("ddim", {"n_steps": 7, "eta": 0.5}), ("ddim", {"n_steps": 7}), ("annealed_langevin", {"n_levels": 3, "steps_per_level": 2}),
    ("cld", {"n_steps": 7})])
def test_a_rowwise_score_is_evaluated_block_by_block_with_the_same_numbers(sampler, params, monkeypatch):
    """With ``rowwise`` the samplers call the score once per block of rows, before changing those
    rows; without it once per step on all rows. The particles are equal to the last bit (the
    drift's arithmetic is elementwise) and ``nfe.calls = evals / n`` is the number of steps either way."""
    from bench_core.cell.nfe import CountingScore
    from bench_plugins.samplers import noise_blocks
    from bench_core.components.discovery import get_registry

    monkeypatch.setattr(noise_blocks, "BLOCK_ELEMENTS", 64)  # 32 rows of 2 values: 10 blocks of 313 rows
    n = 313
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    outs, counts = [], []
    for rowwise in (True, False):
        score = _Counted(rowwise)
        if sampler == "cld":  # the velocity score of N(1.5, 0.49 I) is not needed: any rowwise map will do
            score.velocity_score = lambda x, v, t, s=score: s(x, t) - v
        counted = CountingScore(score, n)
        made = get_registry().create("samplers", sampler, **params)
        outs.append(made.sample(counted, x0, generator=torch.Generator().manual_seed(1)))
        counts.append((counted.rows(), score.rows))
    assert torch.equal(outs[0], outs[1])
    (by_block, block_rows), (whole, whole_rows) = counts
    assert by_block == whole and by_block["nfe.calls"] == len(whole_rows)
    assert set(whole_rows) == {n} and max(block_rows) == 32 and len(block_rows) == 10 * len(whole_rows)
