"""Block-wise float64 statistics equal the all-at-once ones and leave the input untouched."""
from __future__ import annotations

import pytest
import torch

from bench_plugins.metrics import float64_blocks as fb


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blocks_match_the_direct_computation(monkeypatch, dtype):
    monkeypatch.setattr(fb, "BLOCK_ROWS", 7)  # many blocks and a ragged last one
    x = (torch.randn(100, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3 + 5).to(dtype)
    before = x.clone()
    x64 = x.to(torch.float64)
    mean = fb.mean64(x)
    torch.testing.assert_close(mean, x64.mean(0), rtol=0, atol=1e-12)
    centered = x64 - x64.mean(0)
    torch.testing.assert_close(fb.scatter64(x, mean), centered.T @ centered, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(fb.norms64(x), x64.norm(dim=-1), rtol=0, atol=1e-12)
    assert torch.equal(x, before)  # float64 input: the blocks are views, and stay unmodified
