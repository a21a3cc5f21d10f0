"""Training sets and reference samples, drawn with common random numbers.

The training set depends only on (seed, target) and the reference sample on
(seed, target), so every score, initializer and sampler in a seed shares them. A finite data
set (a target with ``split(seed)``) gives its training set from the seed's training rows and its
reference from the held-out rows only: no metric compares against a row a score was trained on.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from bench_core.base.errors import SuiteError
from bench_core.components.protocols import Target, TrainingData
from bench_core.base.seeding import make_generator
from bench_core.suite.parsed import ComponentSpec


def _random_rows(rows: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """``k`` of ``rows`` chosen without replacement by a permutation drawn from ``generator``."""
    chosen = torch.randperm(rows.shape[0], generator=generator, device=generator.device)[:k]
    return rows[chosen.to(rows.device)]


def make_training_data(target: Target, target_spec: ComponentSpec, seed: int, n_train: int,
                       duplicate: int, device: Any) -> TrainingData:
    """``n_train`` exact draws, each repeated ``duplicate`` times (rows stay grouped); for a finite data
    set, ``n_train`` of the seed's training rows (without replacement) and its held-out rows as ``heldout``.

    Raises
    ------
    SuiteError
        When a data set's training split has fewer than ``n_train`` rows.
    """
    generator = make_generator(seed, "train", target_spec.key(), device=device)
    heldout = None
    if callable(getattr(target, "split", None)):
        rows, heldout = target.split(seed)
        if n_train > rows.shape[0]:
            raise SuiteError(f"[data] n_train = {n_train} asks for more rows than the training split of target "
                             f"{target_spec.label()} holds ({rows.shape[0]} of its {rows.shape[0] + heldout.shape[0]} "
                             f"rows; {heldout.shape[0]} are held out); lower n_train to at most {rows.shape[0]}")
        distinct = _random_rows(rows, n_train, generator).to(device)
        heldout = heldout.to(device)
    else:
        distinct = target.sample(n_train, generator)
    train = distinct.repeat_interleave(duplicate, dim=0) if duplicate > 1 else distinct
    return TrainingData(train=train, distinct=distinct, duplicate=duplicate, heldout=heldout)


def make_reference(target: Target, target_spec: ComponentSpec, seed: int, n: int, device: Any) -> Tensor:
    """Fresh exact samples for metrics, independent of the training set; for a finite data set, the seed's
    held-out rows (a random ``n`` of them when it holds more)."""
    generator = make_generator(seed, "reference", target_spec.key(), device=device)
    if callable(getattr(target, "split", None)):
        heldout = target.split(seed)[1]
        return (_random_rows(heldout, n, generator) if n < heldout.shape[0] else heldout).to(device)
    return target.sample(n, generator)


def check_particles(x: Any, n: int, dim: int, who: str, dtype: Optional[torch.dtype] = None,
                    device: Optional[str] = None) -> Tensor:
    """Refuse a result that is not a ``[n, dim]`` tensor of the suite's dtype on its device, naming the
    component that made it."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} returned {type(x).__name__}, expected a torch.Tensor of shape [{n}, {dim}]")
    if tuple(x.shape) != (n, dim):
        raise ValueError(f"{who} returned shape {list(x.shape)}, expected [{n}, {dim}]")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{who} returned {str(x.dtype).replace('torch.', '')} particles in a "
                        f"{str(dtype).replace('torch.', '')} suite; keep the dtype of x0 (e.g. torch.empty_like(x0))")
    if device is not None and x.device.type != torch.device(device).type:
        raise TypeError(f"{who} returned particles on {x.device}, expected {device}; keep the device of x0")
    return x
