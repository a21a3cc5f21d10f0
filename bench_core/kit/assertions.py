"""The kit's assertions: one failed requirement is an AssertionError "<who>: <problem>; <fix>"."""
from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from torch import Tensor

from bench_core.components.protocols import conformance_problem
from bench_core.components.registry import SINGULAR

RNG_FIX = "draw every random number from the generator argument, never from the global RNG"


def require(ok: Any, who: str, problem: str, fix: str) -> None:
    """Fail with "<who>: <problem>; <fix>" unless ``ok``."""
    if not ok:
        raise AssertionError(f"{who}: {problem}; {fix}")


def conform(kind: str, protocol: str, obj: Any, fix: str) -> str:
    """Assert that ``obj`` follows the protocol of ``kind``; return how messages name it."""
    who = f"{SINGULAR[kind]} {type(obj).__name__}"
    problem = conformance_problem(kind, obj)
    require(problem is None, who, f"does not follow the {protocol} protocol: {problem}", fix)
    return who


def finite_real(v: Any) -> bool:
    """A finite real number that is not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def seeded(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def check_tensor(out: Any, who: str, what: str, shape: tuple[int, ...], dtype: torch.dtype,
                  device: torch.device, fix_dtype: str) -> None:
    """Type, shape, dtype, device and (for non-bool tensors) finiteness of one output."""
    require(isinstance(out, Tensor), who, f"{what} returned {type(out).__name__}, not a Tensor",
             "return a torch.Tensor")
    require(tuple(out.shape) == shape, who, f"{what} has shape {list(out.shape)}, expected "
             f"{list(shape)}", "return one row per particle ([n, d]) or one value per particle ([n])")
    require(out.dtype == dtype, who, f"{what} has dtype {out.dtype}, expected {dtype}", fix_dtype)
    require(out.device == device, who, f"{what} is on {out.device}, expected {device}",
             "create tensors on the device of the input (or of the generator)")
    require(out.dtype == torch.bool or bool(torch.isfinite(out).all()), who,
             f"{what} has non-finite values", "return finite values for finite inputs")
