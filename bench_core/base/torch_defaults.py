"""torch's process-wide default dtype, set for a block and restored after it.

Targets and initializers draw in ``torch.get_default_dtype()`` (the suite's dtype), so the plan,
the cell runner and the conformance kit each set it for what they build or check; the previous
default comes back even when the block raises.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """``torch.set_default_dtype(dtype)`` for the block, then the previous default again."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
