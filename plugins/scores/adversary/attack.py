"""The sampler an adversary is trained against, run so that its output is differentiable in the score.

A sampler sees the score only through calls ``s(x, t)``; its steps are torch operations on the
particles, most of them in place (``x.add_(drift, alpha=h)``). Autograd records in-place updates,
so the output particles depend differentiably on the perturbation's weights through every step
(pathwise: the starts and the noise are constants of the graph) as long as no tensor a backward
formula saved is later overwritten. :class:`ScoreOnCopy` gives the score a copy of the particles
at every call, so the sampler may keep updating its ``x`` in place: nothing the graph saved is
``x`` itself. Built-in samplers (ULA, DDPM both discretizations, DDIM, annealed Langevin, the
diffusers schedulers whose step is torch) run unchanged and stay graph-free in their cells.

A sampler that cannot be attacked (it detaches, works under ``no_grad``, leaves torch for numpy, or
overwrites what the graph needs) is found by :func:`differentiability_problem`, which runs the
sampler once on a few particles with a one-parameter perturbation and asks for its gradient: the
refusal then names the sampler and the reason at ``bench check``.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from bench_core import ComponentError, canonical_json, get_registry

#: what the probe of :func:`differentiability_problem` found, per (sampler name, params): run once per process
_PROBED: dict[str, Optional[str]] = {}
PROBE_PARTICLES = 4


class ScoreOnCopy:
    """``s(x, t) + delta(x, t)`` evaluated on a copy of ``x`` (see the module docstring).

    Parameters
    ----------
    exact : callable
        ``(x, t) -> grad log p_t(x)``.
    delta : callable
        ``(x, t) -> perturbation`` (a tensor that requires grad).
    """

    rowwise = True  # both parts are functions of each row alone

    def __init__(self, exact: Callable[[Tensor, float], Tensor], delta: Callable[[Tensor, float], Tensor]) -> None:
        self.exact, self.delta = exact, delta

    def __call__(self, x: Tensor, t: float) -> Tensor:
        copy = x.clone()  # the graph saves this copy, never the sampler's x it keeps updating in place
        return self.exact(copy, t) + self.delta(copy, t)


@dataclass(frozen=True)
class AttackedSampler:
    """The attacked sampler and how its particles start: ``starts(n, generator)`` and ``run(score, x0, generator)``.

    A Langevin-family sampler starts from the named initializer; a diffusion sampler from N(0, I) at
    its horizon, as in its cells.
    """

    name: str
    params: dict
    sampler: Any
    start: Optional[Any]  # the initializer, None for diffusion samplers
    target: Any
    data: Any

    @property
    def family(self) -> str:
        return getattr(self.sampler, "family", "langevin")

    def starts(self, n: int, generator: torch.Generator) -> Tensor:
        if self.start is None:
            dtype = torch.get_default_dtype()
            return torch.randn(n, self.target.dim, generator=generator, dtype=dtype, device=generator.device)
        x0 = self.start(n, target=self.target, data=self.data, generator=generator)
        return x0.to(torch.get_default_dtype())

    def run(self, score: Any, x0: Tensor, generator: torch.Generator) -> Tensor:
        return self.sampler.sample(score, x0, generator=generator)

    def grid(self) -> list[tuple[float, float]]:
        """``(t, weight)`` of every score query: ``score_times()`` for a diffusion sampler, ``[(0, 1)]`` else."""
        score_times = getattr(self.sampler, "score_times", None)
        if self.family != "diffusion" or score_times is None:
            return [(0.0, 1.0)]
        return [(float(t), float(h)) for t, h in score_times()]

    def source_modules(self) -> list[Any]:
        """The modules whose code determines what the attack trains against (for the cache key)."""
        parts = [self.sampler] + ([self.start] if self.start is not None else [])
        return [inspect.getmodule(type(p)) for p in parts]


def build_attack(attack: str, attack_params: dict, start: str, start_params: dict, target: Any,
                 data: Any) -> AttackedSampler:
    """The attacked sampler from the registry, with its start (refused with the reason when it cannot be attacked)."""
    registry = get_registry()
    try:
        sampler = registry.create("samplers", attack, **attack_params)
    except (ComponentError, ValueError, TypeError) as exc:
        raise ValueError(f"parameter 'attack' / 'attack_params': {exc}") from None
    initializer = None
    if getattr(sampler, "family", "langevin") != "diffusion":
        try:
            initializer = registry.create("initializers", start, **start_params)
        except (ComponentError, ValueError, TypeError) as exc:
            raise ValueError(f"parameter 'start' / 'start_params': {exc}") from None
    elif start_params:
        raise ValueError(f"parameter 'start_params': sampler '{attack}' is a diffusion sampler, which starts from "
                         "N(0, I) at its horizon; remove start and start_params")
    attacked = AttackedSampler(attack, dict(attack_params), sampler, initializer, target, data)
    problem = differentiability_problem(attacked)
    if problem is not None:
        raise ValueError(f"sampler '{attack}' cannot be attacked: {problem}; attack a sampler whose steps are "
                         "torch operations on the particles (ula, ddpm, ddim, annealed_langevin)")
    return attacked


def differentiability_problem(attacked: AttackedSampler) -> Optional[str]:
    """Why the attacked sampler's output is not differentiable in the score, or None when it is.

    Runs it on :data:`PROBE_PARTICLES` particles with the exact score plus ``theta * 1`` (one
    parameter, value 0) and checks that ``d sum(output) / d theta`` exists and is finite.
    """
    key = canonical_json({"sampler": attacked.name, "params": attacked.params, "dim": attacked.target.dim,
                          "target": type(attacked.target).__qualname__})
    if key not in _PROBED:
        _PROBED[key] = _probe(attacked)
    return _PROBED[key]


def _probe(attacked: AttackedSampler) -> Optional[str]:
    dtype = torch.get_default_dtype()
    theta = torch.zeros((), dtype=dtype, requires_grad=True)
    generator = torch.Generator().manual_seed(0)
    score = ScoreOnCopy(attacked.target.score, lambda x, t: theta.expand_as(x))
    try:
        with torch.enable_grad():
            out = attacked.run(score, attacked.starts(PROBE_PARTICLES, generator), generator)
            if not isinstance(out, Tensor) or not out.requires_grad:
                return "its output does not depend on the score through autograd (it detaches, runs under no_grad " \
                       "or leaves torch)"
            (grad,) = torch.autograd.grad(out.sum(), theta, allow_unused=True)
    except Exception as exc:  # noqa: BLE001 - whatever stops the probe stops the search: it is the reason
        first = (str(exc).strip().splitlines() or [""])[0]
        return f"running it with a differentiable score fails ({type(exc).__name__}: {first})"
    if grad is None:
        return "its output does not depend on the score through autograd"
    if not torch.isfinite(grad):
        return f"the gradient of its output in the score is not finite ({float(grad)})"
    return None
