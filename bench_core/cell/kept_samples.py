"""Kept samples: each cell's final particles (and checkpoint states) saved so that a metric added to a
finished suite is computed without running a sampler again.

``[suite] keep_samples = true`` (the suite's dtype), ``"float32"`` or ``"float16"`` writes, for every
cell that finishes ``done``, ``<out>/samples/<sample key>.npz`` holding ``final`` and one ``step_<k>``
array per checkpoint, plus ``t_<k>`` and the sampling wall time. The file is named by the cell's
*sample key*: the hash of everything that determines the samples (components, params, seed,
``n_samples``, ``dtype``, ``device``, training data, checkpoints, and the code of the target, score,
initializer and sampler), but not the metrics. When only the metrics of a suite change, the cell keys
change and the sample keys do not; such a cell copies the rows of the metrics it already has (same
metric spec, ``n_reference`` and metric code) and computes only the new ones from the kept samples.
Samples kept as float16 feed the new metrics rounded to 11 significant bits; the copied rows are exact.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from bench_core.base.atomic_files import write_npz_atomic

SAMPLES_DIR = "samples"
_BYTES = {"float16": 2, "float32": 4, "float64": 8}


@dataclass
class KeptSamples:
    """What a reused cell needs from the earlier one: its states and the rows it recorded."""

    final: np.ndarray
    states: list[tuple[int, float, np.ndarray]]  # (step, t, particles) per checkpoint, in step order
    sample_s: float  # the sampling wall time of the run that produced them
    rows: list = field(default_factory=list)  # the earlier cell's MetricRows (with their metric keys)


@dataclass
class SamplesToKeep:
    """States a cell produced, to be written by the driver (workers need no access to the output folder)."""

    final: Tensor
    states: list[tuple[int, float, Tensor]]
    sample_s: float


def to_storage(x: Tensor, dtype: str) -> Tensor:
    """A CPU copy in the storage dtype."""
    return x.detach().to("cpu", getattr(torch, dtype), copy=True)


def size_estimate(dims: list[int], n_samples: int, n_states: int, dtype: str) -> int:
    """Bytes the kept samples of cells with targets of dimensions ``dims`` take (final samples plus
    ``n_states`` checkpoint states each)."""
    return sum(dims) * (1 + n_states) * n_samples * _BYTES[dtype]


class SampleArchive:
    """The ``samples/`` folder of a results folder."""

    def __init__(self, out_dir: Path) -> None:
        self.folder = Path(out_dir) / SAMPLES_DIR

    def path(self, sample_key: str) -> Path:
        return self.folder / f"{sample_key[:32]}.npz"

    def save(self, sample_key: str, kept: SamplesToKeep) -> Path:
        """Write atomically (temporary file, fsync, rename): a killed run never leaves a partial file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays = {"final": kept.final.numpy(), "sample_s": np.float64(kept.sample_s)}
        for step, t, state in kept.states:
            arrays[f"step_{step}"] = state.numpy()
            arrays[f"t_{step}"] = np.float64(t)
        return write_npz_atomic(self.path(sample_key), arrays)

    def load(self, sample_key: str, rows_of: Callable[[str], Optional[list]]) -> Optional[KeptSamples]:
        """The kept samples of ``sample_key`` with the rows the finished cell that made them recorded
        (``rows_of``, e.g. :meth:`Store.rows_of_sample`, asked only when a file is kept); None when
        either is missing (then the cell samples again)."""
        path = self.path(sample_key)
        rows = rows_of(sample_key) if path.exists() else None
        if rows is None:
            return None
        try:
            with np.load(path) as data:
                steps = sorted(int(name[5:]) for name in data.files if name.startswith("step_"))
                states = [(s, float(data[f"t_{s}"]), data[f"step_{s}"]) for s in steps]
                return KeptSamples(data["final"], states, float(data["sample_s"]), rows)
        except (OSError, ValueError, KeyError):
            return None  # unreadable (e.g. written by another version): sample again
