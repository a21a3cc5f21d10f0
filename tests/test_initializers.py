"""Initializers: shapes, grouping, independence from the training set, determinism."""
from __future__ import annotations

import pytest
import torch

from bench_core.components.protocols import TrainingData
from bench_core.kit import check_initializer
from bench_plugins.initializers.starts import Fresh, Point, StandardNormal, Train
from bench_plugins.targets.gaussian import GaussianTarget

TARGET = GaussianTarget(4, mean=2.0)


def data(n_train=50):
    distinct = TARGET.sample(n_train, torch.Generator().manual_seed(1))
    return TrainingData(distinct.repeat_interleave(3, 0), distinct, 3)


@pytest.mark.parametrize("init", [StandardNormal(), Fresh(7), Train(7), Point(1.5), Point([0.0, 1.0, 2.0, 3.0])])
def test_conformance(init):
    check_initializer(init, TARGET, data())


def test_train_starts_are_training_points_each_repeated():
    d = data()
    x = Train(distinct=7)(100, target=TARGET, data=d, generator=torch.Generator().manual_seed(0))
    unique, counts = torch.unique(x, dim=0, return_counts=True)
    assert len(unique) == 7 and set(counts.tolist()) <= {14, 15}  # 100 rows over 7 points: 14 or 15 each
    member = (torch.cdist(unique, d.distinct) == 0).any(1)
    assert member.all()


def test_fresh_starts_are_not_training_points():
    d = data()
    x = Fresh(distinct=5)(20, target=TARGET, data=d, generator=torch.Generator().manual_seed(0))
    assert len(torch.unique(x, dim=0)) == 5
    assert torch.cdist(x, d.distinct).min() > 0


def test_point_and_errors():
    x = Point([0.0, 1.0, 2.0, 3.0])(3, target=TARGET, data=data(), generator=torch.Generator())
    assert x.tolist() == [[0.0, 1.0, 2.0, 3.0]] * 3
    with pytest.raises(ValueError, match="parameter 'x'.*dim = 4"):
        Point([1.0, 2.0])(3, target=TARGET, data=data(), generator=torch.Generator())
    with pytest.raises(ValueError, match="distinct = 80 exceeds the 50 distinct training points"):
        Train(80)(100, target=TARGET, data=data(), generator=torch.Generator())
    with pytest.raises(ValueError, match="parameter 'distinct'"):
        Fresh(0)
