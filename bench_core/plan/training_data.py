"""Training sets and reference samples, drawn with common random numbers.

The training set depends only on (seed, target) and the reference sample on
(seed, target), so every score, initializer and sampler in a seed shares them.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from bench_core.components.protocols import Target, TrainingData
from bench_core.base.seeding import make_generator
from bench_core.suite.parsed import ComponentSpec


def make_training_data(target: Target, target_spec: ComponentSpec, seed: int, n_train: int,
                       duplicate: int, device: Any) -> TrainingData:
    """``n_train`` exact draws, each repeated ``duplicate`` times (rows stay grouped)."""
    generator = make_generator(seed, "train", target_spec.key(), device=device)
    distinct = target.sample(n_train, generator)
    train = distinct.repeat_interleave(duplicate, dim=0) if duplicate > 1 else distinct
    return TrainingData(train=train, distinct=distinct, duplicate=duplicate)


def make_reference(target: Target, target_spec: ComponentSpec, seed: int, n: int, device: Any) -> Tensor:
    """Fresh exact samples for metrics, independent of the training set."""
    return target.sample(n, make_generator(seed, "reference", target_spec.key(), device=device))


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
