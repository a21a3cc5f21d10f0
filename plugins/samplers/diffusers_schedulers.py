"""The ``diffusers`` sampler: a Hugging Face diffusers scheduler (von Platen et al., 2022) driven with
bench's score as its epsilon model, on bench's 1000-level linear schedule; see :mod:`.ou_diffusion`.

Derivation. Bench's forward process is ``x_t = e^{-t} x_0 + sqrt(1 - e^{-2t}) z``, i.e.
``alpha_bar = e^{-2t}``. A variance-preserving diffusers scheduler (DDPM, DDIM, PNDM, DPM-Solver,
UniPC, DEIS) describes the same ``x = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps``, and the ideal
epsilon model is ``E[eps | x] = -sqrt(1 - alpha_bar) grad log p_t(x)`` (Tweedie; Vincent 2011), so each
model call is answered with ``eps = -sqrt(1 - alpha_bar) s(x, t)`` at ``t = -log(alpha_bar) / 2``. A
variance-exploding scheduler (Euler, Euler ancestral, Heun, KDPM2, LMS; Karras et al. 2022) carries
``x_ve = x_0 + sigma eps = x / sqrt(alpha_bar)``, so ``alpha_bar = 1 / (1 + sigma^2)``, and its
``scale_model_input(x_ve) = x_ve / sqrt(sigma^2 + 1)`` is exactly the OU particle ``x``: the same
formula applies to the scaled input. The scheduler is given bench's schedule: ``num_train_timesteps =
1000``, ``trained_betas`` = :func:`~.schedules.linear_betas` ``(1000)``, ``prediction_type =
"epsilon"``, clipping and thresholding off.

The noise level of a model call is the one the scheduler's ``step()`` uses for it:

- DDPM, DDIM, PNDM: ``alpha_bar = alphas_cumprod[timestep]`` (integer timesteps);
- DPMSolverMultistep/Singlestep, UniPC, DEIS: ``sigma = sigmas[step_index]``. On the default grids
  (integer timesteps) this is ``alphas_cumprod[timestep]`` exactly; on Karras, exponential, beta or
  Lu grids the timestep is sigma's rounded level and the update still assumes sigma, so sigma is used;
- Euler, Euler ancestral, LMS, Heun: ``sigma = sigmas[step_index]``, the sigma of ``scale_model_input``;
  for the float timesteps of the default ``"linspace"`` spacing (e.g. 978.61) diffusers interpolates
  sigma linearly between levels, and that sigma is used. Heun's second stage reads the next sigma
  (its array repeats every interior sigma); KDPM2's second stage reads ``sigmas_interpol[step_index]``,
  the geometric mean of consecutive sigmas.

The particles ``x0 ~ N(0, I)`` (bench's prior at ``T``) enter as ``x0 * init_noise_sigma``, as
diffusers pipelines start (1 for variance-preserving schedulers; ``sigma_max`` for the ``"linspace"``
and ``"trailing"`` spacings of the VE ones, which shrinks the first model input by
``sigma_max / sqrt(1 + sigma_max^2)``, ``1 - 2e-5`` at level 1000). After each step the callback gets the
time of the next model call (the final time after the last) and the particles in OU coordinates (``x_ve
e^{-t}``); DDIM and PNDM with ``"linspace"`` spacing step to ``timestep - 1000 // n_steps``, up to one
level off the next timestep, which their next step then assumes. The levels are read by one dry run of the scheduler
at construction (a 1-row tensor, a linear dummy model, no score call), which also refuses a grid the
scheduler cannot run; ``sample()`` then queries exactly those times.

Precision: diffusers builds its tables in float32. The sampler replaces them with bench's float64
schedule (``betas``, ``alphas_cumprod``, the log-SNR tables, ``final_alpha_cumprod``) before
``set_timesteps`` and maps the float32 ``sigmas`` it then returns to float64 (each entry that is the
float32 rounding of a level's sigma becomes that level's float64 sigma). Schedulers whose ``step()``
rounds the sample to float32 (see :mod:`.diffusers_catalog`) stay float32-limited.
"""
from __future__ import annotations

import copy
import inspect
import math
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from bench_core import ScoreEstimate, StepCallback, hookimpl, nonnegative_float, positive_int

from .diffusers_catalog import SUPPORTED, TRAIN_TIMESTEPS, Entry, check_kwargs, resolve
from .ou_diffusion import OUDiffusion
from .schedules import linear_betas

INSTALL_HINT = "sampler 'diffusers' needs the diffusers library: pip install 'bench[diffusers]'"


def load_scheduler_class(name: str) -> Any:
    """The diffusers class ``name``, imported on first use (the module imports without diffusers)."""
    try:
        import diffusers
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    return getattr(diffusers, name)


def build_scheduler(cls: Any, entry: Entry, kwargs: dict[str, Any], n_steps: int) -> Any:
    """``cls`` on bench's schedule, in float64, with ``set_timesteps(n_steps)`` done."""
    betas = linear_betas(TRAIN_TIMESTEPS)
    accepted = inspect.signature(cls.__init__).parameters
    config: dict[str, Any] = {"num_train_timesteps": TRAIN_TIMESTEPS, "trained_betas": betas.tolist(),
                              "prediction_type": "epsilon"}
    config.update({key: False for key in ("clip_sample", "thresholding") if key in accepted})
    config.update({**entry.defaults, **kwargs})
    try:
        scheduler = cls(**config)
    except Exception as exc:  # noqa: BLE001 - diffusers raises ValueError, NotImplementedError, ImportError...
        raise ValueError(f"parameter 'kwargs': {cls.__name__}({kwargs}) failed: {type(exc).__name__}: {exc}") from exc
    cumprod = torch.cumprod(1.0 - betas, dim=0)
    scheduler.betas, scheduler.alphas, scheduler.alphas_cumprod = betas, 1.0 - betas, cumprod
    if hasattr(scheduler, "lambda_t"):  # the DPM-Solver family's log-SNR tables (lambda_min_clipped reads them)
        scheduler.alpha_t, scheduler.sigma_t = cumprod.sqrt(), (1.0 - cumprod).sqrt()
        scheduler.lambda_t = scheduler.alpha_t.log() - scheduler.sigma_t.log()
    if hasattr(scheduler, "final_alpha_cumprod"):  # DDIM, PNDM: the level after the last step
        one = torch.tensor(1.0, dtype=torch.float64)
        scheduler.final_alpha_cumprod = one if scheduler.config.set_alpha_to_one else cumprod[0]
    if hasattr(scheduler, "one"):  # DDPM: alpha_bar after the last step
        scheduler.one = torch.tensor(1.0, dtype=torch.float64)
    try:
        scheduler.set_timesteps(n_steps)
    except Exception as exc:  # noqa: BLE001 - e.g. PNDM's Runge-Kutta warm-up needs n_steps >= 4
        raise ValueError(f"parameter 'n_steps': {cls.__name__} with kwargs {kwargs} cannot set {n_steps} timesteps: "
                         f"{type(exc).__name__}: {exc}") from exc
    table = ((1.0 - cumprod) / cumprod).sqrt()  # float64 sigma of each level, increasing
    for name in ("sigmas", "sigmas_interpol"):
        values = getattr(scheduler, name, None)
        if isinstance(values, Tensor):
            setattr(scheduler, name, snap_to_levels(values, table))
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(0)  # step_index = the loop index, even where a timestep repeats
    return scheduler


def snap_to_levels(values: Tensor, table: Tensor) -> Tensor:
    """``values`` in float64, each entry that is the float32 rounding of an entry of ``table``
    (increasing, float64) replaced by that entry; the others (off-level sigmas, 0) kept as they are."""
    out = values.detach().to(torch.float64).clone()
    table32, rounded = table.to(torch.float32), values.to(torch.float32)
    index = torch.searchsorted(table32, rounded).clamp(max=len(table) - 1)
    hit = table32[index] == rounded
    out[hit] = table[index[hit]]
    return out


def drive(scheduler: Any, x: Tensor, eps_of: Callable[[int, Tensor], Tensor], step_kwargs: dict[str, Any],
          after_step: Optional[Callable[[int, Tensor], None]] = None) -> Tensor:
    """The diffusers denoising loop: for each timestep, ``eps_of(i, scale_model_input(x))`` then ``step``."""
    for i, timestep in enumerate(scheduler.timesteps):
        eps = eps_of(i, scheduler.scale_model_input(x, timestep))
        x = scheduler.step(eps, timestep, x, **step_kwargs).prev_sample
        if after_step is not None:
            after_step(i, x)
    return x


def call_time(scheduler: Any, kind: str, i: int, timestep: Tensor) -> float:
    """The OU time of model call ``i``: the level the scheduler's ``step()`` will use (module docstring)."""
    if kind == "alpha":
        return -0.5 * math.log(float(scheduler.alphas_cumprod[int(timestep)])) + 0.0
    sigmas = scheduler.sigmas
    if getattr(scheduler, "sigmas_interpol", None) is not None and not scheduler.state_in_first_order:
        sigmas = scheduler.sigmas_interpol  # KDPM2's second stage
    return 0.5 * math.log1p(float(sigmas[i]) ** 2)


def final_time(scheduler: Any, kind: str) -> float:
    """The OU time after the last step."""
    if kind == "alpha":  # DDIM, PNDM: final_alpha_cumprod; DDPM: 1
        return -0.5 * math.log(float(getattr(scheduler, "final_alpha_cumprod", 1.0))) + 0.0
    return 0.5 * math.log1p(float(scheduler.sigmas[-1]) ** 2)


class DiffusersSampler(OUDiffusion):
    """A diffusers scheduler driven with the score as its epsilon model (von Platen et al., diffusers) on
    bench's 1000-level linear schedule (Ho et al. 2020). Supported (the "Scheduler" suffix is optional),
    with model evaluations per step and internal precision (64: the particles' dtype; 32: step() rounds
    the sample to float32): DDPMScheduler (1; 64; stochastic), DDIMScheduler (1; 64; stochastic when
    eta > 0), PNDMScheduler (1, but 4 in each of its 3 Runge-Kutta warm-up steps: n_steps + 9 in all; 64),
    DPMSolverMultistepScheduler (1; 32; stochastic for algorithm_type sde-*), DPMSolverSinglestepScheduler
    (1; 64; stochastic for sde-dpmsolver++), UniPCMultistepScheduler (1; 64), DEISMultistepScheduler (1;
    64; ends at level 1, t = 5e-5), EulerDiscreteScheduler (1; 32), EulerAncestralDiscreteScheduler (1;
    32; stochastic), HeunDiscreteScheduler (2: 2 n_steps - 1 in all, the last step is Euler; 64),
    KDPM2DiscreteScheduler (2: 2 n_steps - 1 in all, the last step is Euler; 64), LMSDiscreteScheduler
    (1; 64).

    The mapping between the score and the scheduler is derived in
    :mod:`bench_plugins.samplers.diffusers_schedulers`; stochastic schedulers draw from the cell's generator
    (``step(generator=...)``).

    Parameters
    ----------
    scheduler : str, default "DPMSolverMultistepScheduler"
        The diffusers class name, with or without the "Scheduler" suffix.
    n_steps : int, default 50
        ``num_inference_steps`` of ``set_timesteps``, at most 1000 (the schedule's training timesteps).
    kwargs : dict, optional
        Scheduler constructor arguments (refused: the schedule's, prediction_type, clipping, thresholding).
        For instance ``{algorithm_type = "dpmsolver++", solver_order = 3, use_karras_sigmas = true}``.
    eta : float, default 0.0
        DDIM's ``step(eta=...)`` (0: deterministic; 1: DDPM-like noise); DDIMScheduler only.

    Attributes
    ----------
    n_steps : int
        Scheduler steps, each one model evaluation and one callback (``len(timesteps)``: 2 n_steps - 1 for
        Heun and KDPM2, n_steps + 9 for PNDM).
    internal_dtype : torch.dtype
        float32 where ``step()`` rounds the sample to float32, else float64.
    """

    def __init__(self, scheduler: str = "DPMSolverMultistepScheduler", n_steps: int = 50,
                 kwargs: Optional[dict] = None, eta: float = 0.0) -> None:
        self.scheduler = resolve(scheduler)
        self.entry = SUPPORTED[self.scheduler]
        self.num_inference_steps = positive_int("n_steps", n_steps)
        if self.num_inference_steps > TRAIN_TIMESTEPS:
            raise ValueError(f"parameter 'n_steps' must be <= {TRAIN_TIMESTEPS} (the training timesteps of the "
                             f"schedule, the most levels {self.scheduler} can visit), got {n_steps!r}")
        self.eta = nonnegative_float("eta", eta)
        if self.eta > 0 and self.scheduler != "DDIMScheduler":
            raise ValueError(f"parameter 'eta' is a DDIMScheduler step argument; {self.scheduler} takes none "
                             "(leave eta at 0)")
        if self.eta > 1.0:  # DDIM's sqrt(1 - alpha_bar_prev - sigma^2) needs eta <= 1
            raise ValueError(f"parameter 'eta' must be in [0, 1], got {eta!r}")
        cls = load_scheduler_class(self.scheduler)
        self.kwargs = check_kwargs(self.scheduler, kwargs,
                                   [p for p in inspect.signature(cls.__init__).parameters if p != "self"])
        self._prepared = build_scheduler(cls, self.entry, self.kwargs, self.num_inference_steps)
        self.internal_dtype = torch.float32 if self.entry.bits == 32 else torch.float64
        self._bits = float(self.entry.bits)
        self.times, self.final_t = self._dry_run()
        self.T = self.times[0]
        self.n_steps = len(self.times)

    def _step_kwargs(self, scheduler: Any, generator: torch.Generator) -> dict[str, Any]:
        accepted = inspect.signature(scheduler.step).parameters
        out: dict[str, Any] = {"generator": generator} if "generator" in accepted else {}
        if self.scheduler == "DDIMScheduler":
            out["eta"] = self.eta
        return out

    def _dry_run(self) -> tuple[list[float], float]:
        """The OU time of every model call and the final time, from one run on a 1-row tensor with a linear
        dummy model (no score call); a grid the scheduler cannot run is refused here."""
        scheduler, kind, times = copy.deepcopy(self._prepared), self.entry.kind, []

        def eps_of(i: int, model_in: Tensor) -> Tensor:
            times.append(call_time(scheduler, kind, i, scheduler.timesteps[i]))
            return 0.5 * model_in

        problem = f"{self.scheduler} with n_steps = {self.num_inference_steps} and kwargs = {self.kwargs}"
        try:
            generator = torch.Generator().manual_seed(0)
            x = drive(scheduler, torch.ones(1, 1, dtype=torch.float64), eps_of, self._step_kwargs(scheduler, generator))
        except Exception as exc:  # noqa: BLE001 - diffusers' own refusals of a grid
            raise ValueError(f"parameter 'n_steps': {problem} fails: {type(exc).__name__}: {exc}") from exc
        final = final_time(scheduler, kind)
        grid = times + [final]
        if not bool(torch.isfinite(x).all()) or any(b > a for a, b in zip(grid, grid[1:])) or not times:
            raise ValueError(f"parameter 'n_steps': {problem} gives a grid it cannot run (its dry run gave non-finite "
                             "particles or increasing noise levels; a timestep repeated by rounding, as with n_steps "
                             "near 1000, makes a zero-length step); choose fewer steps or other kwargs")
        return times, final

    def score_times(self) -> list[tuple[float, float]]:
        """``(t_k, h_k)`` per model call: ``h_k`` is the time from ``t_k`` to the next distinct call time (the
        final time after the last), shared equally by consecutive calls at the same time (Heun's second
        stage, PNDM's Runge-Kutta stages), so that the ``h_k`` sum to ``T`` minus the final time."""
        out, k, grid = [], 0, self.times + [self.final_t]
        while k < len(self.times):
            j = k
            while j + 1 < len(self.times) and self.times[j + 1] == self.times[k]:
                j += 1
            share = (self.times[k] - grid[j + 1]) / (j - k + 1)
            out += [(self.times[k], share)] * (j - k + 1)
            k = j + 1
        return out

    def diagnostics(self) -> dict[str, float]:
        """``internal_dtype_bits``: 32 or 64, the precision of the last run (or the scheduler's, before one)."""
        return {"internal_dtype_bits": self._bits}

    def sample(self, score: ScoreEstimate, x0: Tensor, *, generator: torch.Generator,
               callback: Optional[StepCallback] = None) -> Tensor:
        scheduler = copy.deepcopy(self._prepared)  # a fresh state machine per run
        times, ve = self.times, self.entry.kind == "ve"
        reached = times[1:] + [self.final_t]
        # eps = -sqrt(1 - alpha_bar) s(x, t); a VE sample is x e^{t}
        eps_scale = [-math.sqrt(-math.expm1(-2.0 * t)) for t in times]
        self._bits = float(min(self.entry.bits, torch.finfo(x0.dtype).bits))

        def eps_of(i: int, model_in: Tensor) -> Tensor:
            return score(model_in, times[i]) * eps_scale[i]

        def after_step(i: int, x: Tensor) -> None:
            callback(i + 1, reached[i], x * math.exp(-reached[i]) if ve else x)

        x = x0 * scheduler.init_noise_sigma  # a new tensor: x0 is never modified
        x = drive(scheduler, x, eps_of, self._step_kwargs(scheduler, generator),
                  after_step if callback is not None else None)
        if ve and self.final_t != 0.0:
            x = x * math.exp(-self.final_t)
        return x.to(x0.dtype)


@hookimpl
def register_samplers(register):
    register("diffusers", DiffusersSampler,
             description="a Hugging Face diffusers scheduler driven with the score as its epsilon model")
