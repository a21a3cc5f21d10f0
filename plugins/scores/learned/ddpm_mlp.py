"""Score ``ddpm_mlp``: the paper's noise-prediction network, trained by bench on the cell's training set.

Cao, Chen, Sridharan, Wu (2026), Section 4: an MLP ``eps_theta(x_k, k)`` (:class:`~.eps_mlp.EpsMLP`)
trained with the DDPM objective (:mod:`.ddpm_training`, Ho et al. 2020, Algorithm 1) on the linear
schedule of 1000 levels (beta 1e-4 .. 0.02), levels ``1..levels``. As a score estimate it answers
every t: ``s_t(x) = -eps_theta(x, k(t)) / sqrt(1 - abar_k)`` with ``k(t)`` the level nearest to OU
time t; ``t = 0`` reads level ``readout`` (level 10: ``-22.97 eps_theta``). A t whose level lies
beyond the trained ones fails the cell, naming the levels trained.

Weights are cached (:class:`bench_core.CacheEntry`) under a key hashed from the training rows
themselves (so the target, its params, the data seed, ``n_train`` and ``duplicate``), every training
param except ``epochs``, the device type and the source of the training code (:mod:`.eps_mlp`,
:mod:`.ddpm_training`, :mod:`.schedules`). ``epochs`` names a snapshot of that one training run: a
grid over epochs trains once, to the largest value.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from bench_core import (Target, TrainingData, cache_root, canonical_json, hookimpl, nonnegative_int, positive_float,
                        positive_int, source_digest, tensor_digest, tensor_size)

from bench_plugins.samplers import schedules
from bench_plugins.samplers.schedules import REFERENCE_LEVELS, level_times

from . import ddpm_training, eps_mlp
from .ddpm_training import CACHE_KIND, DDPMTrainingJob, snapshot_name
from .network import ModelScore


class DDPMMLPScore:
    """The paper's trained network as a score estimate (see the module docstring).

    Parameters
    ----------
    width : int, default 256
        Hidden width (the paper: 256 for the Gaussian target, 512 for the GMM).
    depth : int, default 3
        Hidden layers.
    epochs : int, default 150000
        Full-batch epochs (the paper's 150 000); a grid over it trains once, with snapshots.
    lr : float, default 1e-3
        Adam learning rate (not given in the paper; Adam's customary default).
    batch : int, default 0
        Rows per Adam step; 0: the full batch (the paper).
    levels : int, default 100
        Train on levels 1..levels (the paper: the lowest 100); 1000 for diffusion samplers.
    readout : int, default 10
        The level read at t = 0 (the paper: 10).
    embed : int, default 32
        Features of the sinusoidal level embedding (documented choice, :mod:`.eps_mlp`).
    train_seed : int, default 0
        Seeds the initial weights and the training noise (with the training set's digest).
    """

    def __init__(self, target: Target, data: TrainingData, width: int = 256, depth: int = 3, epochs: int = 150_000,
                 lr: float = 1e-3, batch: int = 0, levels: int = 100, readout: int = 10, embed: int = 32,
                 train_seed: int = 0) -> None:
        self.epochs = positive_int("epochs", epochs)
        self.levels = positive_int("levels", levels)
        if self.levels > REFERENCE_LEVELS:
            raise ValueError(f"parameter 'levels' must be <= {REFERENCE_LEVELS}, got {levels!r}")
        self.readout = positive_int("readout", readout)
        if self.readout > self.levels:
            raise ValueError(f"parameter 'readout' ({readout}) must be one of the trained levels 1..{self.levels}")
        embed = positive_int("embed", embed)
        if embed % 2:
            raise ValueError(f"parameter 'embed' must be even, got {embed!r}")
        depth = positive_int("depth", depth)
        # about depth + 1 layers of width^2 weights, each held three times while training (the weights and
        # Adam's two moments): refused before any network is made or trained
        width = tensor_size("width", width, per_unit=3 * (depth + 1), power=2,
                            what="the network's weights and Adam's moments")
        params = {"width": width, "depth": depth,
                  "lr": positive_float("lr", lr), "batch": nonnegative_int("batch", batch), "levels": self.levels,
                  "embed": embed, "train_seed": nonnegative_int("train_seed", train_seed)}
        # readout is not here: it changes how the network is read, not its weights
        train = data.train.detach()
        device = train.device.type
        recipe = {"training_rows": list(train.shape), "data_sha256": tensor_digest(train), "params": params}
        spec = {"kind": CACHE_KIND, **recipe, "device": device,
                "code_sha256": source_digest(eps_mlp, ddpm_training, schedules)}
        key = hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:32]
        seed_key = hashlib.sha256(canonical_json(recipe).encode()).hexdigest()[:32]
        self.job = DDPMTrainingJob(key, spec, seed_key, train.cpu(), device, params, frozenset({self.epochs}),
                                   str(cache_root()))
        self.max_time = level_times()[self.levels - 1]
        self._score: Optional[ModelScore] = None

    def training_job(self) -> DDPMTrainingJob:
        """What must be trained for this estimate (the harness runs it once per run, before the cells)."""
        return self.job

    @property
    def snapshot(self) -> Path:
        """The folder of this estimate's weights (``weights.pt``, ``loss.csv``, ``model.json``)."""
        return self.job.entry.snapshot_path(snapshot_name(self.epochs))

    def prepare(self) -> None:
        """Load the network now (training it if the cache lacks it): the harness calls this before the
        sampler runs, so a network that cannot be loaded fails the cell in this score, not the sampler."""
        self.model_score()

    def model_score(self) -> ModelScore:
        """The network read as a score, trained (or loaded from the cache) on first use."""
        if self._score is None:
            if self.job.missing():  # a snapshot that fails its checksum counts as missing: trained again
                self.job.run()
            model = self._load_model()
            # read on the suite's device and dtype (weights are float32; float64 suites upcast them exactly)
            model = model.to(device=self.job.device, dtype=torch.get_default_dtype())
            self._score = ModelScore(model, output="eps", time="level",
                                     t0=level_times()[self.readout - 1], name=CACHE_KIND)
        return self._score

    def _load_model(self) -> torch.nn.Module:
        """The network with the snapshot's weights.

        A snapshot with checksums matches what was written (``missing()`` checked), so a failure to load
        it is not damage: it is raised, naming the file. A snapshot from before checksums were recorded is
        verified by loading it whole (weights and training state, which ``diagnostics`` reads); one that
        does not load is discarded, with a warning, and trained again.
        """
        entry, name = self.job.entry, snapshot_name(self.epochs)
        try:
            if not entry.checksummed(name):
                torch.load(self.snapshot / "state.pt", map_location="cpu", weights_only=True)
            return self._read_weights()
        except Exception as exc:  # noqa: BLE001 - any reader's error means the same: it cannot be used
            # torch's reader errors run to several sentences of advice: the first says what failed
            what = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0].split('. ')[0]}"
            if entry.checksummed(name):
                raise RuntimeError(f"cannot load the cached network {self.snapshot / 'weights.pt'} ({what}) though "
                                   "it matches the checksum recorded when it was written; remove "
                                   f"{self.snapshot} to train it again") from exc
            with entry.lock():
                if not entry.checksummed(name):  # not already replaced by another process
                    entry.discard(name, f"it does not load: {what}")
            self.job.run()
            return self._read_weights()

    def _read_weights(self) -> torch.nn.Module:
        model = self.job.build_model()
        model.load_state_dict(torch.load(self.snapshot / "weights.pt", map_location="cpu", weights_only=True))
        return model

    rowwise = True  # a per-point MLP (:class:`~.network.ModelScore`)

    def __call__(self, x: Tensor, t: float) -> Tensor:
        score = self.model_score()
        level = score.level(t)
        if level > self.levels:
            raise ValueError(f"score 'ddpm_mlp' was trained on levels 1..{self.levels} (OU times up to "
                             f"{self.max_time:.4g}); the sampler queried t = {t:.4g} (level {level}). "
                             "Train on every level (levels = 1000) to use it with a diffusion sampler")
        return score(x, t)

    def diagnostics(self) -> dict[str, float]:
        """``train_loss``: the DDPM loss of the last epoch."""
        losses = torch.load(self.snapshot / "state.pt", map_location="cpu", weights_only=True)["losses"]
        return {"train_loss": float(losses[-1])}


@hookimpl
def register_scores(register):
    register(CACHE_KIND, DDPMMLPScore,
             description="the paper's DDPM noise-prediction MLP, trained on the training set (cached)")
