"""The OU forward process shared by the diffusion samplers (DDPM, DDIM, annealed Langevin).

Forward process (docs/architecture.md, Time and seeds): ``x_t = e^{-t} x_0 + sqrt(1 - e^{-2t}) z``,
``alpha_bar = e^{-2t}``.
Every diffusion sampler exposes the same interface: ``family = "diffusion"``, ``process = "ou"``, the
horizon ``T``, ``score_times()`` (the OU time ``t_k`` of each score query, in query order, and the
length ``h_k`` of OU time that query covers; ``sum h_k = T - final time``, except annealed Langevin whose
last level covers ``[0, t_min]``), ``forward_coefficients(t)``
and ``sample(score, x0, *, generator, callback)``. ``x0`` (drawn from N(0, I) by the runner) is
cloned, never redrawn or modified. The update rules are pure functions, explicitly seeded.
"""
from __future__ import annotations

from bench_core import positive_float

from .schedules import ou_coefficients


class OUDiffusion:
    """Shared part of the interface: the family, the forward process and its coefficients."""

    family = "diffusion"
    process = "ou"
    T: float

    def forward_coefficients(self, t: float) -> tuple[float, float]:
        """``(a_t, sigma_t) = (e^{-t}, sqrt(1 - e^{-2t}))``: ``x_t = a_t x_0 + sigma_t z``."""
        return ou_coefficients(t)


def check_betas(beta_min: object, beta_max: object) -> tuple[float, float]:
    low, high = positive_float("beta_min", beta_min), positive_float("beta_max", beta_max)
    if high >= 1.0:
        raise ValueError(f"parameter 'beta_max' must be < 1, got {beta_max!r}")
    if low > high:
        raise ValueError(f"parameter 'beta_min' must be <= beta_max ({high!r}), got {beta_min!r}")
    return low, high
