"""Training a noise-prediction network with the DDPM objective (Ho, Jain, Abbeel 2020, Algorithm 1).

One epoch over the training rows ``x_0`` (full batch by default, as in Cao et al. 2026, Section 4):
draw a level ``k ~ Uniform{1..levels}`` and ``eps ~ N(0, I)`` per row (fresh noise every epoch),
form ``x_k = sqrt(abar_k) x_0 + sqrt(1 - abar_k) eps`` and take one Adam step on
``mean ||eps - eps_theta(x_k, k)||^2`` (mean over rows and coordinates). With ``batch`` smaller
than the rows, the epoch is a pass over a random permutation in batches of that size.

:class:`DDPMTrainer` keeps everything the next epoch depends on (weights, Adam state, the
generator's state, the epoch count and the loss curve), so training stopped at epoch E and
resumed gives bit-for-bit the weights of an uninterrupted run: a grid over ``epochs`` is one
training run with snapshots. :class:`DDPMTrainingJob` is that run as the harness schedules it:
cached on disk (:class:`bench_core.CacheEntry`), trained once per run, resumed from snapshots.
"""
from __future__ import annotations

import contextlib
import csv
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import torch
from torch import Tensor, nn

from bench_core import CacheEntry, derive_seed, numeric_context

from bench_plugins.samplers.schedules import REFERENCE_LEVELS, linear_beta_alpha_bars

from .eps_mlp import EpsMLP

LOG_EVERY_S = 10.0  # a progress line at most this often (and at each snapshot)
CACHE_KIND = "ddpm_mlp"
#: how a cached network is loaded back through the ``network`` score
MODEL_PATH = "bench_plugins.scores.learned.eps_mlp:EpsMLP"


class DDPMTrainer:
    """Adam on the DDPM loss of ``model`` over ``x0``, resumable epoch by epoch.

    Parameters
    ----------
    model : nn.Module
        Called as ``model(x_k, k)`` with ``k`` the level as a float tensor ``[n]``.
    x0 : Tensor [N, d]
        Training rows (duplicates included), on the training device and dtype.
    alpha_bars : Tensor [K]
        ``abar_1 .. abar_K`` of the schedule (float64; cast on use).
    levels : int
        Train on levels ``1..levels`` (``<= K``).
    lr : float
        Adam learning rate.
    batch : int or None
        Rows per step; None: full batch.
    generator : torch.Generator
        The only source of randomness (levels, noise, permutations).
    """

    def __init__(self, model: nn.Module, x0: Tensor, *, alpha_bars: Tensor, levels: int, lr: float,
                 batch: Optional[int], generator: torch.Generator) -> None:
        self.model, self.x0, self.levels, self.batch, self.generator = model, x0, levels, batch, generator
        self.alpha_bars = alpha_bars[:levels].to(device=x0.device, dtype=x0.dtype)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.epoch = 0
        self.losses: list[float] = []

    def _step(self, rows: Tensor) -> float:
        n = rows.shape[0]
        g, device = self.generator, rows.device
        k = torch.randint(1, self.levels + 1, (n,), generator=g, device=device)
        eps = torch.randn(rows.shape, generator=g, device=device, dtype=rows.dtype)
        ab = self.alpha_bars[k - 1][:, None]
        xk = ab.sqrt() * rows + (1.0 - ab).sqrt() * eps
        loss = (self.model(xk, k.to(rows.dtype)) - eps).pow(2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def run_epoch(self) -> float:
        """One epoch; returns its mean loss (over batches)."""
        self.model.train()
        if self.batch is None or self.batch >= self.x0.shape[0]:
            loss = self._step(self.x0)
        else:
            order = torch.randperm(self.x0.shape[0], generator=self.generator, device=self.x0.device)
            parts = [self._step(self.x0[idx]) for idx in torch.split(order, self.batch)]
            loss = sum(parts) / len(parts)
        self.epoch += 1
        self.losses.append(loss)
        return loss

    def train_to(self, epochs: int, *, snapshots: Iterable[int] = (),
                 on_snapshot: Optional[Callable[[int], None]] = None, label: str = "",
                 stream: Any = None) -> None:
        """Run epochs until ``epochs``, calling ``on_snapshot(e)`` after each epoch ``e`` in ``snapshots``
        (and at ``epochs``); prints ``epoch, loss, it/s`` lines to ``stream`` (stderr) as it goes."""
        stream = stream or sys.stderr
        marks = {e for e in snapshots if self.epoch < e <= epochs} | {epochs}
        start, last_log, start_epoch = time.perf_counter(), time.perf_counter(), self.epoch
        while self.epoch < epochs:
            loss = self.run_epoch()
            now = time.perf_counter()
            if self.epoch in marks or now - last_log >= LOG_EVERY_S:
                rate = (self.epoch - start_epoch) / max(now - start, 1e-9)
                stream.write(f"  training {label}: epoch {self.epoch}/{epochs} loss {loss:.4f} {rate:.0f} it/s\n")
                stream.flush()
                last_log = now
            if self.epoch in marks and on_snapshot is not None:
                on_snapshot(self.epoch)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (tensors and plain Python values only: loads with weights_only)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "epoch": self.epoch,
                "losses": torch.tensor(self.losses, dtype=torch.float64)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.epoch = int(state["epoch"])
        self.losses = [float(v) for v in state["losses"]]


def snapshot_name(epochs: int) -> str:
    return f"epochs_{epochs:09d}"


@contextlib.contextmanager
def training_numerics() -> Iterator[None]:
    """The cells' numeric context in float32 (one intra-op thread: bit-identical weights on CPU
    whatever the core count; float32 parameters even when a float64 cell trains lazily), with the
    global RNG untouched (parameter init draws from it under a fixed seed)."""
    with numeric_context(torch.float32), torch.random.fork_rng(devices=[]):
        yield


@dataclass
class DDPMTrainingJob:
    """Training of one ``ddpm_mlp`` network to the epochs in ``snapshots`` (picklable: shipped to workers).

    ``key`` names the cache entry (it changes with the code and the device); ``seed_key`` (the training
    rows and params only) seeds the initial weights and the training noise, so a change of code that
    leaves the arithmetic alone reproduces the same weights under a new key.
    """

    key: str
    spec: dict
    seed_key: str
    train: Tensor
    device: str
    params: dict
    snapshots: frozenset = field(default_factory=frozenset)
    root: str = ""

    @property
    def label(self) -> str:
        p = self.params
        return f"{CACHE_KIND} {self.key[:12]} (width {p['width']}, levels {p['levels']}, {self.train.shape[0]} rows)"

    @property
    def entry(self) -> CacheEntry:
        return CacheEntry(CACHE_KIND, self.key, self.spec, Path(self.root) if self.root else None)

    def missing(self) -> list[int]:
        entry = self.entry
        return sorted(e for e in self.snapshots if not entry.has(snapshot_name(e)))

    def merged(self, other: "DDPMTrainingJob") -> "DDPMTrainingJob":
        return replace(self, snapshots=self.snapshots | other.snapshots)

    def build_model(self) -> EpsMLP:
        p = self.params
        return EpsMLP(self.train.shape[1], p["width"], p["depth"], p["embed"])

    def run(self, stream: Any = None) -> None:
        """Train what is missing, under the entry's lock; resumes from the largest finished snapshot
        below the first missing one (bit-identical to an uninterrupted run)."""
        stream = stream or sys.stderr
        entry = self.entry
        with entry.lock(), training_numerics():
            missing = self.missing()
            if not missing:
                return
            p = self.params
            torch.manual_seed(derive_seed(p["train_seed"], "ddpm_mlp.init", self.seed_key))
            model = self.build_model().to(self.device)
            x0 = self.train.to(device=self.device, dtype=torch.float32)
            generator = torch.Generator(device=self.device)
            generator.manual_seed(derive_seed(p["train_seed"], "ddpm_mlp.train", self.seed_key))
            trainer = DDPMTrainer(model, x0, alpha_bars=linear_beta_alpha_bars(REFERENCE_LEVELS),
                                  levels=p["levels"], lr=p["lr"], batch=p["batch"] or None, generator=generator)
            below = [e for e in (int(s.split("_")[1]) for s in entry.snapshots()) if e < missing[0]]
            if below:
                state = torch.load(entry.snapshot_path(snapshot_name(max(below))) / "state.pt",
                                   map_location=self.device, weights_only=True)
                trainer.load_state_dict(state)
            stream.write(f"training {self.label} from epoch {trainer.epoch} to {missing[-1]} "
                         f"-> {entry.path}\n")
            stream.flush()

            def save(epoch: int) -> None:
                if not entry.has(snapshot_name(epoch)):
                    final = entry.snapshot_path(snapshot_name(epoch))
                    entry.write_snapshot(snapshot_name(epoch), lambda folder: self._write(folder, final, trainer))

            trainer.train_to(missing[-1], snapshots=missing, on_snapshot=save, label=self.key[:12], stream=stream)

    def _write(self, folder: Path, final: Path, trainer: DDPMTrainer) -> None:
        """Fill the temporary ``folder`` of the snapshot that will be renamed to ``final``."""
        weights = {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}
        torch.save(weights, folder / "weights.pt")
        torch.save(trainer.state_dict(), folder / "state.pt")
        with open(folder / "loss.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["epoch", "loss"])
            writer.writerows((i + 1, f"{v:.6g}") for i, v in enumerate(trainer.losses))
        p = self.params
        (folder / "model.json").write_text(json.dumps({
            "model": MODEL_PATH, "kwargs": {"dim": self.train.shape[1], "width": p["width"], "depth": p["depth"],
                                            "embed": p["embed"]},
            "weights": str(final / "weights.pt"), "output": "eps", "time": "level",
            "epochs": trainer.epoch}, indent=2))
