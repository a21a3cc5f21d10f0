"""Sample views: the radial distances and the 2-D plane are what their docstring says."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench_core.cell.sample_views import VIEW_N, load_views, sample_view, save_view
from bench_plugins.targets.gaussian import GaussianTarget


def test_the_view_measures_distance_to_the_mean_and_projects_on_an_orthonormal_plane(tmp_path):
    target = GaussianTarget(5, mean=[3.0, 0.0, 0.0, 0.0, 0.0])
    g = torch.Generator().manual_seed(0)
    samples = torch.randn(800, 5, generator=g)
    reference = target.sample(900, g).float()
    view = sample_view(samples, reference, target)
    x, ref = samples[:VIEW_N].double(), reference[:VIEW_N].double()
    center = torch.tensor([3.0, 0, 0, 0, 0], dtype=torch.float64)
    np.testing.assert_allclose(view["radial"], (x - center).norm(dim=1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(view["radial_ref"], (ref - center).norm(dim=1).numpy(), rtol=1e-6)
    # u = e_1 (the mean's direction); v = the axis least aligned with u (e_2 here), orthogonalized
    np.testing.assert_allclose(view["plane"], x[:, :2].numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(view["plane_ref"], ref[:, :2].numpy(), rtol=1e-6, atol=1e-6)
    assert all(v.dtype == np.float32 for v in view.values())
    save_view(tmp_path, "abc", view)
    loaded = load_views(tmp_path)
    assert set(loaded) == {"abc"} and all(np.array_equal(loaded["abc"][k], view[k]) for k in view)
    (tmp_path / "views" / "broken.npz").write_bytes(b"not a zip")
    assert set(load_views(tmp_path)) == {"abc"}  # a damaged view loses its picture, not the report


def test_a_centred_target_projects_on_the_mean_shift():
    target = GaussianTarget(3)  # mean 0: u follows the samples' mean shift
    g = torch.Generator().manual_seed(1)
    reference = target.sample(500, g).float()
    samples = torch.randn(500, 3, generator=g) + torch.tensor([0.0, 0.0, 5.0])
    view = sample_view(samples, reference, target)
    assert view["plane"][:, 0].mean() == pytest.approx(5.0, abs=0.2)
    assert view["plane_ref"][:, 0].mean() == pytest.approx(0.0, abs=0.2)
