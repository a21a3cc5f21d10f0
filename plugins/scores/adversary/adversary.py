"""Score ``adversary``: the exact score plus a perturbation searched to do the most damage at a fixed L2 budget.

``s_hat(x, t) = grad log p_t(x) + delta_theta(x, t)``, with ``delta_theta`` a gradient field or a
free field (:mod:`.perturbation`), scaled so that its squared L2 size is exactly ``budget``
(:mod:`.budget`: ``eps_0^2`` under ``norm = "zero"``, the time average ``eps_bar^2`` over the
attacked sampler's grid under ``norm = "bar"``), and trained (:mod:`.training`) by gradient ascent
on a divergence between the output of the sampler it attacks and the target.

The attacked sampler is named by ``attack`` / ``attack_params`` (a Langevin sampler also by its
``start``); the cell's own sampler may be any other (transfer). An adversary trained against a
diffusion sampler is a function of ``(x, t)``, perturbed at every t. One trained against a Langevin
sampler is a t = 0 estimate, and under a diffusion sampler it takes the time forms the traps have
(:mod:`bench_plugins.scores.time_forms`): ``naive`` (``s_t + delta(x, 0)`` at every t) or
``admissible`` (default: that below the first t where ``E_{p_t}||delta||^2`` exceeds the budget,
measured on the adversary's fixed budget points, the exact score above).

The weights are cached under a key of the target (its class, samples and score at fixed points), the
attacked sampler and start (names, params and source files), every training param and the source of
the training code; the cell seed does not enter: every seed of a cell evaluates the same adversary on
fresh starts and noise.
"""
from __future__ import annotations

import hashlib
import inspect
import json
from typing import Any, Optional

import torch
from torch import Tensor

from bench_core import (Target, TrainingData, cache_root, canonical_json, choice, hookimpl, nonnegative_int,
                        positive_float, positive_int, source_digest, tensor_digest, tensor_size)

from bench_plugins.scores import time_forms
from bench_plugins.scores.time_forms import TimeIndexed, schedule_param

from . import attack as attack_module, budget as budget_module, perturbation, training
from .attack import build_attack
from .budget import NORMS
from .training import CACHE_KIND, DIVERGENCES, AdversaryTrainingJob

#: points at which a target is evaluated for its part of the cache key
TARGET_PROBE_POINTS = 64


def target_digest(target: Target) -> str:
    """sha256 of what identifies a target for training: its class, dim, samples and score at fixed points."""
    generator = torch.Generator().manual_seed(0)
    x = target.sample(TARGET_PROBE_POINTS, generator).to(torch.float64)
    digest = hashlib.sha256(f"{type(target).__module__}.{type(target).__qualname__}:{target.dim}".encode())
    digest.update(tensor_digest(x).encode())
    digest.update(tensor_digest(target.score(x, 0.0).to(torch.float64)).encode())
    return digest.hexdigest()


class AdversaryScore(TimeIndexed):
    """The exact score plus a trained worst-case perturbation at a fixed budget (see the module docstring).

    Parameters
    ----------
    attack : str, default "ula"
        The sampler the perturbation is trained against (any registered sampler it can differentiate).
    attack_params : dict, default {}
        Its params.
    start : str, default "standard_normal"
        The initializer of a Langevin ``attack`` (a diffusion sampler starts from N(0, I)).
    start_params : dict, default {}
        Its params.
    budget : float, default 1e-2
        The squared L2 size of the perturbation (``eps_0^2`` or ``eps_bar^2``, see ``norm``).
    norm : {"bar", "zero"}, default "bar"
        ``bar``: the time average over the attacked sampler's grid (``eps_0^2`` for a Langevin sampler);
        ``zero``: at t = 0 only (Langevin attacks only).
    form : {"gradient", "field"}, default "gradient"
        ``grad_x phi_theta`` or an MLP's output.
    width : int, default 64
        The MLP's hidden width.
    depth : int, default 2
        Its hidden tanh layers.
    iterations : int, default 60
        Adam steps of the search.
    lr : float, default 1e-2
        Adam's initial learning rate (cosine decay to 0 over the iterations).
    n_particles : int, default 256
        Particles of the attacked sampler per step (and target samples of the divergence).
    divergence : {"energy", "sinkhorn"}, default "energy"
        What the search maximizes.
    blur : float, default 0.05
        Sinkhorn's entropic blur (divergence "sinkhorn" only).
    n_norm_batch : int, default 512
        Fresh budget points per training step.
    n_norm : int, default 8192
        The fixed points of the trained network's scale (and of its admissible cutoff).
    train_seed : int, default 0
        Seeds the weights and every draw of the search.
    schedule : {"admissible", "naive"}, optional
        The time form of a Langevin-trained adversary under a diffusion sampler (default admissible).
    """

    def __init__(self, target: Target, data: TrainingData, attack: str = "ula", attack_params: Optional[dict] = None,
                 start: str = "standard_normal", start_params: Optional[dict] = None, budget: float = 1e-2,
                 norm: str = "bar", form: str = "gradient", width: int = 64, depth: int = 2, iterations: int = 60,
                 lr: float = 1e-2, n_particles: int = 256, divergence: str = "energy", blur: float = 0.05,
                 n_norm_batch: int = 512, n_norm: int = 8192, train_seed: int = 0,
                 schedule: Optional[str] = None) -> None:
        self.target = target
        params = {"budget": positive_float("budget", budget), "norm": choice("norm", norm, NORMS),
                  "form": choice("form", form, perturbation.FORMS), "width": tensor_size("width", width),
                  "depth": positive_int("depth", depth), "iterations": positive_int("iterations", iterations),
                  "lr": positive_float("lr", lr), "n_particles": tensor_size("n_particles", n_particles),
                  "divergence": choice("divergence", divergence, DIVERGENCES), "blur": positive_float("blur", blur),
                  "n_norm_batch": tensor_size("n_norm_batch", n_norm_batch), "n_norm": tensor_size("n_norm", n_norm),
                  "train_seed": nonnegative_int("train_seed", train_seed)}
        if params["n_particles"] < 2:
            raise ValueError(f"parameter 'n_particles' must be >= 2 (a divergence between samples), got {n_particles}")
        attacked = build_attack(attack, dict(attack_params or {}), start, dict(start_params or {}), target, data)
        self.diffusion_trained = attacked.family == "diffusion"
        if self.diffusion_trained and params["norm"] == "zero":
            raise ValueError(f"parameter 'norm': 'zero' bounds the error at t = 0 only, and '{attack}' is a diffusion "
                             "sampler, which queries every t; use norm = 'bar'")
        if self.diffusion_trained and schedule is not None:
            raise ValueError(f"parameter 'schedule': an adversary trained against the diffusion sampler '{attack}' "
                             "has its own time form; schedule applies to adversaries trained against Langevin samplers")
        self.schedule = schedule_param("admissible" if schedule is None else schedule)
        if self.diffusion_trained:
            self.schedule = "naive"  # perturbed at every t: the time form it was trained in
        self.budget, self.params = params["budget"], params
        recipe = {"target": target_digest(target), "attack": attack, "attack_params": attacked.params,
                  "start": None if attacked.start is None else [start, dict(start_params or {})],
                  "params": params, "dtype": str(torch.get_default_dtype())}
        code = source_digest(perturbation, budget_module, attack_module, training, time_forms,
                             *attacked.source_modules(), inspect.getmodule(type(target)))
        spec = {"kind": CACHE_KIND, **recipe, "code_sha256": code}
        key = hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:32]
        seed_key = hashlib.sha256(canonical_json(recipe).encode()).hexdigest()[:32]
        self.job = AdversaryTrainingJob(key, spec, seed_key, attacked, params, str(cache_root()))
        self._cutoff = None
        self._mc_points = None  # set to the job's budget points when the network is loaded
        self._models: dict[tuple[torch.dtype, torch.device], Any] = {}
        self._info: Optional[dict] = None

    def training_job(self) -> AdversaryTrainingJob:
        """What must be trained for this estimate (the harness runs it once per run, before the cells)."""
        return self.job

    def prepare(self) -> None:
        """Load the trained network now (training it if the cache lacks it): a network that cannot be
        trained fails the cell here, in the score, not in the sampler."""
        self.info()

    def info(self) -> dict:
        """The trained network's model.json (training it first if the cache lacks it)."""
        if self._info is None:
            if self.job.missing():
                self.job.run()
            self._info = json.loads((self.job.folder / "model.json").read_text())
            self._mc_points = self.job.final_points()
        return self._info

    def model(self, dtype: torch.dtype, device: torch.device) -> Any:
        """The trained perturbation network in ``dtype`` on ``device``, scaled onto the budget."""
        if (dtype, device) not in self._models:
            scale = self.info()["scale"]
            net = self.job.build_model()
            net.load_state_dict(torch.load(self.job.folder / "weights.pt", map_location="cpu", weights_only=True))
            net = net.to(device=device, dtype=dtype).requires_grad_(False)
            with torch.no_grad():  # delta = scale * raw is linear in the output layer (scaled in the cell's dtype)
                net.out.weight.mul_(scale)
                if net.out.bias is not None:
                    net.out.bias.mul_(scale)
            self._models[(dtype, device)] = net
        return self._models[(dtype, device)]

    rowwise = True

    def perturbed(self, x: Tensor, t: float) -> Tensor:
        delta = self.model(x.dtype, x.device)(x, t if self.diffusion_trained else 0.0)
        return self.target.score(x, t) + delta

    def error_at(self, t: float) -> float:
        self.info()  # err(t) is measured on the adversary's own budget points
        return self.mc_error(t)

    def diagnostics(self) -> dict[str, float]:
        """``budget``, the budget points' ``eps0_sq`` and the search's last objective; cutoff for t = 0 adversaries."""
        info = self.info()
        out = {"budget": self.budget, "train_eps0_sq": float(info["eps0_sq"]),
               "train_objective": float(info["objective_last"])}
        if not self.diffusion_trained:
            out.update(self.schedule_diagnostics())
        return out


@hookimpl
def register_scores(register):
    register(CACHE_KIND, AdversaryScore,
             description="exact score + a perturbation searched against a sampler at a fixed L2 budget (cached)")
