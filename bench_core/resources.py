"""What a suite asks of the machine, estimated before anything runs.

A cell holds its particles several times over (the start, the state, the score's result, the final
samples and a metric's copy), the reference samples and the training set. A suite whose cell cannot
fit in this machine's memory, or whose cells would run for months, is refused by ``bench check``
with the estimate and the limit, instead of failing every cell at run time with an allocation error.
"""
from __future__ import annotations

import os
from typing import Any

from .errors import SuiteError

#: copies of the [n, d] particles a cell holds at its peak (x0, x, drift, final samples, a metric's copy)
PARTICLE_COPIES = 5
#: coordinate-steps (particles x dimensions x steps) above which one cell is refused: about 40 days
#: at the 3e8 coordinate-steps per second of one core
MAX_CELL_WORK = 1e15


def physical_memory() -> int:
    """This machine's memory in bytes (1 TiB where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def cell_bytes(suite: Any, dim: int) -> int:
    """Peak memory of one cell of a target of dimension ``dim`` (see the module docstring)."""
    size = 4 if suite.dtype == "float32" else 8
    particles = PARTICLE_COPIES * suite.n_samples * dim * size
    reference = suite.n_reference * dim * size
    training = (suite.n_train * suite.duplicate + suite.n_train) * dim * size
    return particles + reference + training


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def check_resources(suite: Any, targets: dict, samplers: dict) -> None:
    """Refuse a suite whose cells cannot fit in memory or would not finish (SuiteError naming both)."""
    limit = physical_memory()
    for spec, target in targets.items():
        dim = int(getattr(target, "dim", 0) or 0)
        need = cell_bytes(suite, dim)
        if need > limit:
            raise SuiteError(f"{suite.where('targets', spec.index)}: a cell of target {spec.label()} needs about "
                             f"{_gib(need)} ({PARTICLE_COPIES} x n_samples {suite.n_samples} x d {dim}, plus "
                             f"n_reference {suite.n_reference} and n_train {suite.n_train} x duplicate "
                             f"{suite.duplicate} rows), more than this machine's {_gib(limit)} of memory; lower "
                             "n_samples, n_reference, n_train or duplicate")
        for sampler_spec, sampler in samplers.items():
            steps = getattr(sampler, "n_steps", None)
            if isinstance(steps, int) and suite.n_samples * dim * steps > MAX_CELL_WORK:
                raise SuiteError(f"{suite.where('samplers', sampler_spec.index)}: sampler {sampler_spec.label()} "
                                 f"on target {spec.label()} is {suite.n_samples * dim * steps:.3g} coordinate-steps "
                                 f"(n_samples x d x n_steps), above the limit of {MAX_CELL_WORK:.0e} per cell "
                                 "(about 40 days of one core); lower n_steps or n_samples")
