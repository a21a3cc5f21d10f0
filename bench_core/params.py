"""Parameter coercion for factories, built-in and third-party: each error names the parameter and what it must be."""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch


def positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an int >= 1, or raise ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"parameter '{name}' must be an integer >= 1, got {value!r}")
    return value


def positive_float(name: str, value: Any) -> float:
    """Return ``value`` as a finite float > 0, or raise ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"parameter '{name}' must be a finite number > 0, got {value!r}")
    return float(value)


def vector(name: str, value: Any, dim: int, *, positive: bool = False) -> torch.Tensor:
    """A scalar ``a`` (meaning ``a * ones(dim)``) or a list of length ``dim``, as float64."""
    if isinstance(value, bool):
        raise ValueError(f"parameter '{name}' must be a number or a list of {dim} numbers, got {value!r}")
    if isinstance(value, (int, float)):
        out = torch.full((dim,), float(value), dtype=torch.float64)
    elif isinstance(value, (list, tuple)):
        if len(value) != dim or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ValueError(f"parameter '{name}' must be a number or a list of {dim} numbers "
                             f"(dim = {dim}), got a list of length {len(value)}")
        out = torch.tensor([float(v) for v in value], dtype=torch.float64)
    else:
        raise ValueError(f"parameter '{name}' must be a number or a list of {dim} numbers, got {value!r}")
    if not torch.isfinite(out).all():
        raise ValueError(f"parameter '{name}' must be finite, got {value!r}")
    if positive and (out <= 0).any():
        raise ValueError(f"parameter '{name}' must be > 0, got {value!r}")
    return out


def choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """Return ``value`` when it is one of ``choices``, or raise ValueError naming ``name``."""
    if value not in choices:
        raise ValueError(f"parameter '{name}' must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def nonnegative_float(name: str, value: Any) -> float:
    """Return ``value`` as a finite float >= 0, or raise ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"parameter '{name}' must be a finite number >= 0, got {value!r}")
    return float(value)


def nonnegative_int(name: str, value: Any) -> int:
    """Return ``value`` as an int >= 0 (e.g. a seed), or raise ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"parameter '{name}' must be an integer >= 0, got {value!r}")
    return value


def open_interval_float(name: str, value: Any, low: float, high: float) -> float:
    """Return ``value`` as a float strictly between ``low`` and ``high``, or raise ValueError naming ``name``."""
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not low < value < high):
        raise ValueError(f"parameter '{name}' must be a number in the open interval ({low:g}, {high:g}), "
                         f"got {value!r}")
    return float(value)
