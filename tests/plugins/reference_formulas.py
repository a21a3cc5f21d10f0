"""Reference formulas written independently of the plugins, in scalar Python, for the tests."""
from __future__ import annotations

import math


def phi_ref(r: float) -> float:
    """PAPER's phi in scalar Python: 1 - f(u) / (f(u) + f(1 - u)), f(u) = exp(-1/u) (u > 0)."""
    if r <= 1:
        return 1.0
    if r >= 2:
        return 0.0
    f = lambda u: math.exp(-1 / u) if u > 0 else 0.0  # noqa: E731
    return 1 - f(r - 1) / (f(r - 1) + f(2 - r))
