"""The diffusers schedulers the ``diffusers`` sampler drives, and the constructor arguments it refuses.

Each supported class is described by an :class:`Entry`: how its ``step()`` reads the noise level of a
model call (``"alpha"``: ``alphas_cumprod[timestep]``, Ho et al. 2020's variance-preserving chain;
``"vp"``: ``sigmas[step_index]`` on the same variance-preserving sample, the DPM-Solver family of Lu et
al. 2022; ``"ve"``: ``sigmas[step_index]`` on the variance-exploding sample ``x0 + sigma eps`` of Karras
et al. 2022), the model evaluations per step, and whether its ``step()`` rounds the sample to float32
whatever the particles' dtype (checked in diffusers 0.42.1: ``sample = sample.to(torch.float32)``).
The schedule is bench's, and the model is an epsilon model built from a score, so the constructor
arguments that would change either, or that clip or threshold the predicted data (bench's targets are
unbounded), are refused with the reason (:func:`check_kwargs`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from bench_core import did_you_mean


@dataclass(frozen=True)
class Entry:
    """One supported scheduler class: how it reads noise levels, its internal precision, its method."""

    kind: str                 # "alpha", "vp" or "ve" (see the module docstring)
    bits: int                 # 32: step() rounds the sample to float32; 64: it computes in the particles' dtype
    method: str               # the algorithm, its paper, and the model evaluations per step
    defaults: dict[str, Any] = field(default_factory=dict)  # bench's constructor defaults besides the schedule


SUPPORTED: dict[str, Entry] = {
    "DDPMScheduler": Entry("alpha", 64, "ancestral sampling, Ho, Jain, Abbeel 2020; 1 evaluation per step"),
    "DDIMScheduler": Entry("alpha", 64, "DDIM, Song, Meng, Ermon 2021; 1 per step"),
    "PNDMScheduler": Entry("alpha", 64, "pseudo numerical methods, Liu, Ren, Lin, Zhao 2022: 3 Runge-Kutta "
                           "steps of 4 evaluations, then linear multistep (PLMS) with 1"),
    "DPMSolverMultistepScheduler": Entry("vp", 32, "DPM-Solver / DPM-Solver++ multistep, Lu et al. 2022a,b; 1"),
    # diffusers turns lower_order_final on (with a warning) whenever the final sigma is zero, the default
    "DPMSolverSinglestepScheduler": Entry("vp", 64, "DPM-Solver / DPM-Solver++ singlestep, Lu et al. 2022a,b; 1",
                                          {"lower_order_final": True}),
    "UniPCMultistepScheduler": Entry("vp", 64, "UniPC predictor-corrector, Zhao et al. 2023; 1"),
    "DEISMultistepScheduler": Entry("vp", 64, "DEIS multistep exponential integrator, Zhang & Chen 2023; 1"),
    "EulerDiscreteScheduler": Entry("ve", 32, "Euler on the VE probability-flow ODE, Karras et al. 2022; 1"),
    "EulerAncestralDiscreteScheduler": Entry("ve", 32, "Euler ancestral (k-diffusion, Crowson 2022); 1"),
    "HeunDiscreteScheduler": Entry("ve", 64, "Heun's method, Karras et al. 2022 (Alg. 1); 2, the last step 1"),
    "KDPM2DiscreteScheduler": Entry("ve", 64, "DPM-Solver-2 midpoint in log sigma (k-diffusion; Karras et al. "
                                    "2022); 2, the last step 1"),
    "LMSDiscreteScheduler": Entry("ve", 64, "linear multistep of order 4 (k-diffusion, Crowson 2022); 1"),
}

SUFFIX = "Scheduler"

#: the number of training timesteps of bench's schedule: the most levels a scheduler can visit
TRAIN_TIMESTEPS = 1000

_SCHEDULE = "the schedule is bench's (num_train_timesteps = 1000, trained_betas = its linear betas)"
_UNBOUNDED = "bench's targets are unbounded: clipping or thresholding the predicted x0 would bias them"
#: keys refused whatever their value: why
REFUSED = {
    "num_train_timesteps": _SCHEDULE, "beta_start": _SCHEDULE, "beta_end": _SCHEDULE, "beta_schedule": _SCHEDULE,
    "trained_betas": _SCHEDULE, "rescale_betas_zero_snr": _SCHEDULE,
    "clip_sample_range": _UNBOUNDED + " (bench keeps clipping off)",
    "sample_max_value": _UNBOUNDED + " (bench keeps thresholding off)",
    "dynamic_thresholding_ratio": _UNBOUNDED + " (bench keeps thresholding off)",
    "solver_p": "it takes a scheduler object, which a suite cannot give",
}
#: keys refused unless they keep bench's value: (the allowed values, why)
REFUSED_VALUES: dict[str, tuple[tuple[Any, ...], str]] = {
    "clip_sample": ((False,), _UNBOUNDED),
    "thresholding": ((False,), _UNBOUNDED),
    "prediction_type": (("epsilon",), "bench drives the scheduler with an epsilon model made from the score"),
    "variance_type": ((None, "fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log"),
                      "a learned variance needs a model that predicts one; a score gives none"),
    "use_flow_sigmas": ((False,), "flow-matching sigmas follow another forward process than bench's OU"),
    "use_dynamic_shifting": ((False,), "dynamic shifting needs a per-call mu that bench does not pass"),
}


def resolve(name: Any) -> str:
    """The supported class name for ``name``, given with or without the ``Scheduler`` suffix.

    Raises
    ------
    ValueError
        Naming the parameter, the closest supported name and the full list.
    """
    if isinstance(name, str):
        full = name if name.endswith(SUFFIX) else name + SUFFIX
        if full in SUPPORTED:
            return full
    short = [n[: -len(SUFFIX)] for n in SUPPORTED]
    hint = did_you_mean(str(name), list(SUPPORTED) + short)
    raise ValueError(f"parameter 'scheduler': {name!r} is not a supported diffusers scheduler{hint}; supported "
                     f"(with or without the 'Scheduler' suffix): {', '.join(SUPPORTED)}")


def check_kwargs(name: str, kwargs: Optional[dict], accepted: list[str]) -> dict[str, Any]:
    """``kwargs`` checked against the constructor parameters ``accepted`` of scheduler ``name``.

    Raises
    ------
    ValueError
        For a key the constructor does not take (with a did-you-mean over ``accepted``), a refused key or
        value (with the reason), or ``kwargs`` that is not a table.
    """
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ValueError(f"parameter 'kwargs' must be a table of {name} constructor arguments, got {kwargs!r}")
    for key, value in kwargs.items():
        if key not in accepted:
            raise ValueError(f"parameter 'kwargs': {name} has no constructor argument '{key}'"
                             f"{did_you_mean(key, accepted)}; it takes: {', '.join(accepted)}")
        if key in REFUSED:
            raise ValueError(f"parameter 'kwargs': '{key}' is refused: {REFUSED[key]}")
        allowed, why = REFUSED_VALUES.get(key, (None, ""))
        if allowed is not None and value not in allowed:
            raise ValueError(f"parameter 'kwargs': {key} = {value!r} is refused: {why}")
    return dict(kwargs)
