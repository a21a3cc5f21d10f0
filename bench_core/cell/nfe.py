"""What a cell's sampler cost and said about itself: score evaluations (NFE) and ``diagnostics()``.

The sampler receives the score estimate wrapped in a :class:`CountingScore`, which counts every
particle evaluated (``nfe.evals``), including the CLD velocity score, and reports ``nfe.calls`` as
``nfe.evals / n``: the number of evaluations per particle. That is the number of calls when each
covers all ``n`` particles, and stays so when a sampler evaluates a ``rowwise`` score a block of
rows at a time (:meth:`bench_plugins.samplers.noise_blocks.BlockNoise.steps`). Metrics get the bare estimate, so their own evaluations (e.g. ``score_error``)
are not counted. NFE is the cost measure diffusion samplers are compared by; it is recorded for
every cell, at the final samples and at each checkpoint, and is deterministic (identical on rerun).
A sampler's optional ``diagnostics() -> dict`` (e.g. an acceptance rate) is recorded as
``sampler.<key>``.
"""
from __future__ import annotations

from typing import Any, Optional

from torch import Tensor


class CountingScore:
    """Forwards everything to ``score`` and counts the evaluations made through it.

    Parameters
    ----------
    score : ScoreEstimate
        The estimate the sampler sees.
    n : int
        The cell's number of particles: ``nfe.calls = nfe.evals / n``.
    """

    def __init__(self, score: Any, n: int) -> None:
        self._score = score
        self.n = n
        self.evals = 0

    def __call__(self, x: Tensor, t: float) -> Tensor:
        self.evals += x.shape[0]
        return self._score(x, t)

    def __getattr__(self, name: str) -> Any:
        if name == "_score":  # not set yet (e.g. during copy): no recursion
            raise AttributeError(name)
        attr = getattr(self._score, name)
        if name != "velocity_score" or not callable(attr):
            return attr

        def velocity_score(x: Tensor, v: Tensor, t: float) -> Tensor:
            self.evals += x.shape[0]
            return attr(x, v, t)

        return velocity_score

    def rows(self) -> dict[str, float]:
        """``{"nfe.calls": ..., "nfe.evals": ...}`` so far."""
        return {"nfe.calls": self.evals / self.n, "nfe.evals": float(self.evals)}


def sampler_diagnostics(sampler: Any) -> tuple[dict[str, float], Optional[str]]:
    """``{"sampler.<key>": value}`` from ``sampler.diagnostics()`` when it has one, and the reason when
    it raised or returned something other than a dict of numbers (then nothing is recorded)."""
    method = getattr(sampler, "diagnostics", None)
    if not callable(method):
        return {}, None
    try:
        values = method()
        if not isinstance(values, dict):
            raise TypeError(f"diagnostics() returned {type(values).__name__}, not a dict")
        return {f"sampler.{key}": float(value) for key, value in values.items()}, None
    except Exception as exc:  # noqa: BLE001 - a broken diagnostic must not lose the cell
        return {}, f"{type(exc).__name__}: {exc}"
