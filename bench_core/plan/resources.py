"""What a suite asks of the machine, estimated before anything runs.

A cell holds its particles several times over (the start, the state, the score's result, the final
samples and a metric's copy), the reference samples and the training set. A suite whose cell cannot
fit in this machine's memory, or whose cells would run for months, is refused by ``bench check``
with the estimate and the limit, instead of failing every cell at run time with an allocation error.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

from bench_core.base.errors import SuiteError
from bench_core.base.machine import physical_memory

#: copies of the [n, d] particles a cell holds at its peak (x0, x, drift, final samples, a metric's copy)
PARTICLE_COPIES = 5
#: coordinate-steps (particles x dimensions x steps) above which one cell is refused: about 40 days
#: at the 3e8 coordinate-steps per second of one core
MAX_CELL_WORK = 1e15


def cell_bytes(suite: Any, dim: int) -> int:
    """Peak memory of one cell of a target of dimension ``dim`` (see the module docstring)."""
    size = 4 if suite.dtype == "float32" else 8
    particles = PARTICLE_COPIES * suite.n_samples * dim * size
    reference = suite.n_reference * dim * size
    training = (suite.n_train * suite.duplicate + suite.n_train) * dim * size
    return particles + reference + training


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_cell(suite: Any, spec: Any, dim: int, limit: int) -> None:
    need = cell_bytes(suite, dim)
    if need > limit:
        raise SuiteError(f"{suite.where('targets', spec.index)}: a cell of target {spec.label()} needs about "
                         f"{_gib(need)} ({PARTICLE_COPIES} x n_samples {suite.n_samples} x d {dim}, plus "
                         f"n_reference {suite.n_reference} and n_train {suite.n_train} x duplicate "
                         f"{suite.duplicate} rows), more than this machine's {_gib(limit)} of memory; lower "
                         "n_samples, n_reference, n_train or duplicate" + (" (or dim)" if dim > 1 else ""))


def _check_work(suite: Any, target_spec: Any, dim: int, sampler_spec: Any, steps: Any) -> None:
    if _is_size(steps) and suite.n_samples * dim * steps > MAX_CELL_WORK:
        raise SuiteError(f"{suite.where('samplers', sampler_spec.index)}: sampler {sampler_spec.label()} "
                         f"on target {target_spec.label()} is {suite.n_samples * dim * steps:.3g} coordinate-steps "
                         f"(n_samples x d x n_steps), above the limit of {MAX_CELL_WORK:.0e} per cell "
                         "(about 40 days of one core); lower n_steps or n_samples")


def check_written_sizes(suite: Any) -> None:
    """Refuse sizes written in the suite before any component is built, so that validation never
    allocates in proportion to a size it has not checked: the suite's own sizes (at one coordinate per
    particle), each target's ``dim`` param and each sampler's ``n_steps`` param where they are written.
    A component's other sizes are checked by its factory before it allocates (:func:`bench_core.components.params.
    tensor_size`), and building runs under :func:`bounded_build` in case a plugin does not check."""
    limit = physical_memory()
    targets = suite.components["targets"]
    for spec in targets:
        dim = spec.kwargs.get("dim", 1)
        _check_cell(suite, spec, dim if _is_size(dim) else 1, limit)
        for sampler_spec in suite.components["samplers"]:
            _check_work(suite, spec, dim if _is_size(dim) else 1, sampler_spec, sampler_spec.kwargs.get("n_steps"))


def check_resources(suite: Any, targets: dict, samplers: dict) -> None:
    """Refuse a suite whose cells cannot fit in memory or would not finish (SuiteError naming both)."""
    limit = physical_memory()
    for spec, target in targets.items():
        dim = int(getattr(target, "dim", 0) or 0)
        _check_cell(suite, spec, dim, limit)
        for sampler_spec, sampler in samplers.items():
            _check_work(suite, spec, dim, sampler_spec, getattr(sampler, "n_steps", None))


def build_budget() -> int:
    """Bytes one component may allocate while it is built at check time: half this machine's memory."""
    return physical_memory() // 2


def _address_space() -> int:
    """This process's virtual memory size in bytes (0 where /proc cannot be read)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@contextmanager
def bounded_build() -> Iterator[None]:
    """Build a component with at most :func:`build_budget` bytes of new address space.

    A third-party factory that allocates in proportion to a huge param would otherwise be killed by the
    kernel's out-of-memory killer with nothing printed; under the cap its allocation fails at once
    (torch: RuntimeError "can't allocate memory", Python: MemoryError), which the planner reports as one
    line naming the component. The soft limit is raised back afterwards. Only where the platform has
    RLIMIT_AS and /proc (Linux); elsewhere the written-size checks stand alone.
    """
    base = _address_space()
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError, AttributeError):
        yield
        return
    cap = base + build_budget()
    if not base or (hard != resource.RLIM_INFINITY and cap > hard) or (soft != resource.RLIM_INFINITY and cap > soft):
        yield  # no /proc, or a tighter limit is already in force
        return
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
