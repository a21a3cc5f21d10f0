"""Score estimates built from a target and its training data."""
from __future__ import annotations

from torch import Tensor

from bench_core import SkipCell, Target, TrainingData, hookimpl

from bench_plugins.samplers.cld import mixture_velocity_score


class ExactScore:
    """The target's own score ``grad log p_t`` at every time t (the zero-error baseline)."""

    #: needs the target's closed-form score: on a data set, `bench check` names these instead
    closed_form_only = "a learned score: empirical, ddpm_mlp or network"

    rowwise = True  # a density's gradient at each point: samplers may evaluate it block-wise

    def __init__(self, target: Target, data: TrainingData) -> None:
        self.target = target

    def __call__(self, x: Tensor, t: float) -> Tensor:
        return self.target.score(x, t)

    def velocity_score(self, x: Tensor, v: Tensor, t: float) -> Tensor:
        """The exact CLD velocity score ``grad_v log p_t(x, v)``; needs a target with ``mixture_components()``.

        Raises :class:`~bench_core.SkipCell` naming the target type when it has none.
        """
        mixture_components = getattr(self.target, "mixture_components", None)
        if mixture_components is None:
            raise SkipCell(f"the exact CLD velocity score needs a target with mixture_components(); "
                           f"{type(self.target).__name__} has none")
        return mixture_velocity_score(mixture_components(), x, v, t)


@hookimpl
def register_scores(register):
    register("exact", ExactScore, description="the target's exact score at every t")
