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


def tensor_size(name: str, value: Any, *, per_unit: float = 1.0, power: int = 1, what: str = "a tensor") -> int:
    """Return ``value`` as an int >= 1 that sizes a tensor, refusing it before anything is allocated.

    A factory calls this first for every param that sizes what it builds (a dimension, a component
    count, a network's width), so that a suite with ``dim = 1e9`` is refused in one line instead of
    allocating until the machine runs out of memory.

    Parameters
    ----------
    name, value : str, Any
        The parameter and its value.
    per_unit, power : float, int
        What is sized holds ``per_unit * value**power`` numbers, counted at 8 bytes (float64): e.g.
        ``per_unit = 2`` for a mean and a std vector of length ``dim``, ``per_unit = depth, power = 2``
        for the hidden weights of a network of that ``width``.
    what : str
        What is sized, for the message ("the network's weights").

    Raises
    ------
    ValueError
        Naming ``name`` when ``value`` is not an int >= 1, or when what it sizes would not fit in this
        machine's memory.
    """
    from bench_core.base.machine import physical_memory

    size = positive_int(name, value)
    count = float(per_unit) * float(size) ** power
    limit = physical_memory()
    if count * 8 > limit:
        raise ValueError(f"parameter '{name}' = {size} sizes {what} of {count:.3g} numbers ({count * 8 / 2**30:.3g} "
                         f"GiB in float64), more than this machine's {limit / 2**30:.3g} GiB of memory; lower '{name}'")
    return size


def refuse_unused(mode_param: str, mode: str, given: dict[str, Any], uses: Sequence[str]) -> None:
    """Refuse a param that the chosen mode ignores, instead of dropping it silently.

    A factory whose ``mode_param`` (e.g. ``discretization``) selects which of its params are read gives
    those mode-specific params the default ``None`` and fills in each real default itself, so that a
    param the suite writes can be told from one it leaves out.

    Parameters
    ----------
    mode_param, mode : str, str
        The param that selects the mode, and the mode chosen.
    given : dict
        Each mode-specific param and its value as passed (``None``: not written).
    uses : sequence of str
        The params (of ``given`` and others) that this mode reads, for the message.

    Raises
    ------
    ValueError
        Naming the first param written that ``mode`` does not use, and the params it does use.
    """
    for name, value in given.items():
        if value is not None and name not in uses:
            used = ", ".join(uses) if uses else f"none of {', '.join(given)}"
            raise ValueError(f"parameter '{name}' is not used when {mode_param} = {mode!r} ({mode_param} {mode!r} "
                             f"uses {used}); remove it, or choose a {mode_param} that uses it")
