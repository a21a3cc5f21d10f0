"""Summary statistics over seeds shared by leaderboards and claims."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as _stats


def ci95_halfwidth(values: np.ndarray) -> float:
    """Half-width of the two-sided 95% Student-t interval for the mean (NaN for one value)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    n = len(values)
    if n < 2 or not np.isfinite(values).all():
        return math.nan  # an infinite value (e.g. a cutoff of inf) has no interval
    sd = values.std(ddof=1)
    return float(_stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n))


def reduce(values: np.ndarray, stat: str) -> float:
    """mean | min | max | median of the finite-or-infinite (non-NaN) values; NaN when none."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan
    return float({"mean": np.mean, "min": np.min, "max": np.max, "median": np.median}[stat](values))
