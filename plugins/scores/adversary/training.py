"""Training an adversary: gradient ascent on a divergence between the attacked sampler's output and the target.

Each iteration draws fresh starts, fresh sampler noise, fresh target samples and fresh budget
points from one generator; it runs the attacked sampler with ``s + delta_theta`` (its output is
differentiable in ``theta``: :mod:`.attack`), scales ``delta`` onto the budget (:mod:`.budget`),
and takes one Adam step *up* the divergence (learning rate on a cosine decay to 0) between the output particles and the target samples:

- ``divergence = "energy"``: the energy distance (Szekely & Rizzo 2013)
  ``2 E||X - Y|| - E||X - X'|| - E||Y - Y'||`` with the within-sample terms over distinct pairs
  (unbiased; differentiable everywhere the particles are distinct);
- ``"sinkhorn"``: geomloss's debiased Sinkhorn divergence (Feydy et al. 2019), ``p = 2``.

:class:`AdversaryTrainingJob` is that run as the harness schedules it (like ``ddpm_mlp``): cached on
disk under a key of everything that changes the weights, trained once per run whatever the
executor, with progress lines and the objective curve (``objective.csv``) beside the weights. A
non-finite objective stops the training with an error naming the iteration, which the harness
records as the failure of the cells that use this adversary.
"""
from __future__ import annotations

import csv
import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bench_core import CacheEntry, derive_seed

from bench_plugins.scores.learned.ddpm_training import LOG_EVERY_S, training_numerics

from .attack import AttackedSampler, ScoreOnCopy
from .budget import noise_points, norm_nodes, squared_size
from .perturbation import PerturbationMLP

CACHE_KIND = "adversary"
DIVERGENCES = ("energy", "sinkhorn")
#: time nodes of the budget estimate per training iteration, and for the final scale
TRAIN_NODES, FINAL_NODES = 16, 200


def energy_distance(x: Tensor, y: Tensor) -> Tensor:
    """Unbiased energy distance between the samples ``x`` [n, d] and ``y`` [m, d] (n, m >= 2)."""
    def mean_distinct(a: Tensor) -> Tensor:
        n = a.shape[0]
        sq = (a[:, None, :] - a[None, :, :]).pow(2).sum(-1)
        off = ~torch.eye(n, dtype=torch.bool, device=a.device)
        return sq[off].sqrt().sum() / (n * (n - 1))
    return 2.0 * torch.cdist(x, y).mean() - mean_distinct(x) - mean_distinct(y)


def sinkhorn_divergence(x: Tensor, y: Tensor, blur: float) -> Tensor:
    """geomloss's debiased Sinkhorn divergence, ``p = 2``, entropic blur ``blur``."""
    from geomloss import SamplesLoss  # imported when used: energy-distance training never loads it
    return SamplesLoss("sinkhorn", p=2, blur=blur, debias=True, backend="tensorized")(x, y)


class AdversaryDiverged(RuntimeError):
    """The training objective stopped being finite."""


@dataclass
class AdversaryTrainingJob:
    """Training of one adversary (picklable: shipped to workers). ``seed_key`` (the recipe, not the code)
    seeds the initial weights and every draw of the training; ``key`` adds the code and names the cache entry."""

    key: str
    spec: dict
    seed_key: str
    attacked: AttackedSampler
    params: dict
    root: str = ""
    snapshots: frozenset = frozenset({"trained"})

    @property
    def label(self) -> str:
        p = self.params
        return (f"{CACHE_KIND} {self.key[:12]} (against {self.attacked.name}, budget {p['budget']:g} on "
                f"{'eps_bar^2' if p['norm'] == 'bar' else 'eps_0^2'}, {p['form']})")

    @property
    def entry(self) -> CacheEntry:
        return CacheEntry(CACHE_KIND, self.key, self.spec, Path(self.root) if self.root else None)

    @property
    def folder(self) -> Path:
        return self.entry.snapshot_path("trained")

    def missing(self) -> list[str]:
        return [] if self.entry.has("trained") else ["trained"]

    def merged(self, other: "AdversaryTrainingJob") -> "AdversaryTrainingJob":
        return replace(self)

    def build_model(self) -> PerturbationMLP:
        p = self.params
        return PerturbationMLP(self.attacked.target.dim, p["width"], p["depth"], p["form"])

    def nodes(self, final: bool) -> list[tuple[float, float]]:
        return norm_nodes(self.attacked.grid(), self.params["norm"], FINAL_NODES if final else TRAIN_NODES)

    def run(self, stream: Any = None) -> None:
        """Train (under the entry's lock) unless the cache has it."""
        stream = stream or sys.stderr
        entry = self.entry
        # a cell may load the score lazily inside the sampler's inference_mode: the search needs autograd
        with entry.lock(), training_numerics(), torch.inference_mode(False), torch.enable_grad():
            if not self.missing():
                return
            stream.write(f"training {self.label} -> {entry.path}\n")
            stream.flush()
            model, curve = self._train(stream)
            entry.write_snapshot("trained", lambda folder: self._write(folder, model, curve))

    def _train(self, stream: Any) -> tuple[PerturbationMLP, list[tuple[float, float]]]:
        p, attacked = self.params, self.attacked
        torch.manual_seed(derive_seed(p["train_seed"], "adversary.init", self.seed_key))
        model = self.build_model()
        generator = torch.Generator().manual_seed(derive_seed(p["train_seed"], "adversary.train", self.seed_key))
        optimizer = torch.optim.Adam(model.parameters(), lr=p["lr"])
        # cosine decay to 0: large early steps find the trap, small late ones settle the last iterate,
        # which is the one kept
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=p["iterations"])
        nodes, exact = self.nodes(final=False), attacked.target.score
        curve: list[tuple[float, float]] = []
        start = last_log = time.perf_counter()
        for iteration in range(1, p["iterations"] + 1):
            x0, z = noise_points(attacked.target, p["n_norm_batch"], generator, torch.float32)
            scale = (p["budget"] / squared_size(model, nodes, x0, z)).sqrt()
            score = ScoreOnCopy(exact, lambda x, t: scale * model(x, t if attacked.family == "diffusion" else 0.0))
            out = attacked.run(score, attacked.starts(p["n_particles"], generator), generator)
            reference = attacked.target.sample(p["n_particles"], generator).to(out)
            objective = self._divergence(out, reference)
            value = float(objective.detach())
            if not math.isfinite(value):
                raise AdversaryDiverged(
                    f"adversary {self.key[:12]} against '{attacked.name}' diverged at iteration {iteration}: "
                    f"objective {value} (the attacked sampler's output left float range); lower lr or budget")
            optimizer.zero_grad(set_to_none=True)
            (-objective).backward()
            optimizer.step()
            schedule.step()
            curve.append((value, float(scale.detach())))
            now = time.perf_counter()
            if iteration == p["iterations"] or now - last_log >= LOG_EVERY_S:
                rate = iteration / max(now - start, 1e-9)
                stream.write(f"  training {self.key[:12]}: iteration {iteration}/{p['iterations']} "
                             f"{p['divergence']} {value:.4g} {rate:.2f} it/s\n")
                stream.flush()
                last_log = now
        return model, curve

    def _divergence(self, x: Tensor, y: Tensor) -> Tensor:
        if self.params["divergence"] == "sinkhorn":
            return sinkhorn_divergence(x, y, self.params["blur"])
        return energy_distance(x, y)

    def final_points(self) -> tuple[Tensor, Tensor]:
        """The fixed float64 points of the trained network's budget (and of its admissible cutoff)."""
        generator = torch.Generator().manual_seed(derive_seed(self.params["train_seed"], "adversary.scale",
                                                              self.seed_key))
        return noise_points(self.attacked.target, self.params["n_norm"], generator, torch.float64)

    def _write(self, folder: Path, model: PerturbationMLP, curve: list[tuple[float, float]]) -> None:
        """Weights (float32, unscaled), the objective curve and model.json with the final scale."""
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, folder / "weights.pt")
        with open(folder / "objective.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["iteration", self.params["divergence"], "scale"])
            writer.writerows((i + 1, f"{v:.6g}", f"{s:.6g}") for i, (v, s) in enumerate(curve))
        x0, z = self.final_points()
        exact64 = model.to(torch.float64)
        with torch.no_grad():
            size = float(squared_size(exact64, self.nodes(final=True), x0, z))
            size0 = float(squared_size(exact64, [(0.0, 1.0)], x0, z))
        scale = math.sqrt(self.params["budget"] / size)
        (folder / "model.json").write_text(json.dumps({
            "scale": scale, "budget": self.params["budget"], "norm": self.params["norm"],
            "eps0_sq": scale * scale * size0, "objective_last": curve[-1][0] if curve else math.nan,
            "attack": self.attacked.name, "attack_params": self.attacked.params, "family": self.attacked.family,
            "params": self.params}, indent=2, sort_keys=True))
