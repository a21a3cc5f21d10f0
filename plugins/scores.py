"""Score estimates built from a target and its training data."""
from __future__ import annotations

from torch import Tensor

from bench_core import hookimpl
from bench_core.protocols import Target, TrainingData


class ExactScore:
    """The target's own score ``grad log p_t`` at every time t (the zero-error baseline)."""

    def __init__(self, target: Target, data: TrainingData) -> None:
        self.target = target

    def __call__(self, x: Tensor, t: float) -> Tensor:
        return self.target.score(x, t)


@hookimpl
def register_scores(register):
    register("exact", ExactScore, description="the target's exact score at every t")
