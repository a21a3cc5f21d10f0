"""The smooth step phi of Cao, Chen, Sridharan, Wu (2026) (the paper's Notation)."""
from __future__ import annotations

import math

import pytest
import torch
from scipy.optimize import minimize_scalar

from bench_plugins.scores.traps.smooth_step import SMOOTH_STEP_LIPSCHITZ, smooth_step, smooth_step_grad

DTYPES = (torch.float32, torch.float64)


def phi_literal(r: float) -> float:
    """PAPER's definition, written out in scalar Python: 1 - f(u) / (f(u) + f(1 - u))."""
    f = lambda u: math.exp(-1 / u) if u > 0 else 0.0  # noqa: E731
    u = r - 1
    if r <= 1:
        return 1.0
    if r >= 2:
        return 0.0
    return 1 - f(u) / (f(u) + f(1 - u))


@pytest.mark.parametrize("dtype", DTYPES)
def test_exactly_one_and_zero_outside(dtype):
    inner = torch.tensor([-5.0, 0.0, 0.5, 0.999, 1.0], dtype=dtype)
    outer = torch.tensor([2.0, 2.001, 3.0, 1e30, float("inf")], dtype=dtype)
    assert torch.equal(smooth_step(inner), torch.ones_like(inner))
    assert torch.equal(smooth_step(outer), torch.zeros_like(outer))
    assert torch.equal(smooth_step_grad(torch.cat([inner, outer])), torch.zeros(10, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_nan_near_the_edges(dtype):
    one, two = torch.tensor(1.0, dtype=dtype), torch.tensor(2.0, dtype=dtype)
    edges = torch.stack([one, torch.nextafter(one, two), torch.nextafter(two, one), two,
                         one + 1e-7, one + 1e-3, two - 1e-7, two - 1e-3])
    r = torch.cat([edges, torch.linspace(0, 3, 30001, dtype=dtype), torch.tensor([1e38], dtype=dtype)])
    for out in (smooth_step(r), smooth_step_grad(r)):
        assert out.dtype == dtype and bool(torch.isfinite(out).all())
    phi = smooth_step(r)
    assert bool(((phi >= 0) & (phi <= 1)).all())
    # monotone non-increasing on the sorted grid
    grid = torch.linspace(0, 3, 30001, dtype=dtype)
    assert bool((smooth_step(grid).diff() <= 0).all())


def test_matches_the_literal_formula():
    rs = [1.0 + k / 997 for k in range(1, 997)]
    got = smooth_step(torch.tensor(rs, dtype=torch.float64))
    want = torch.tensor([phi_literal(r) for r in rs], dtype=torch.float64)
    # absolute tolerance: near r = 2 the literal 1 - f/(f + f) cancels, losing relative digits
    assert torch.allclose(got, want, rtol=1e-13, atol=1e-14)
    assert smooth_step(torch.tensor([1.5], dtype=torch.float64)).item() == 0.5
    # phi(1.5 + v) + phi(1.5 - v) = 1, since g(u) + g(1 - u) = 1
    v = torch.linspace(0, 0.5, 101, dtype=torch.float64)
    assert torch.allclose(smooth_step(1.5 + v) + smooth_step(1.5 - v), torch.ones_like(v), atol=1e-15)


def test_relative_accuracy_against_50_digit_reference():
    """Both phi and phi' keep full relative precision, even where they are 1e-200 small."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    us = [1e-3, 1e-2, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999]
    r = torch.tensor([1 + u for u in us], dtype=torch.float64)
    phi, grad = smooth_step(r), smooth_step_grad(r)
    for k, rk in enumerate(r.tolist()):
        u = mp.mpf(rk) - 1  # the float64 input exactly, in 50 digits
        z = 1 / u - 1 / (1 - u)
        s, bump = 1 / (1 + mp.exp(-z)), mp.exp(-abs(z)) / (1 + mp.exp(-abs(z))) ** 2  # bump = s (1 - s)
        want_phi, want_grad = s, -bump * (1 / u**2 + 1 / (1 - u) ** 2)
        for got, want in ((phi[k].item(), want_phi), (grad[k].item(), want_grad)):
            if abs(want) < 1e-300:  # below float64's normal range (phi'(1.001) ~ 1e-428): 0 is right
                assert abs(got) < 1e-300
            else:
                assert abs(got - want) <= 1e-12 * abs(want)


def test_float32_agrees_with_float64():
    r = torch.linspace(0.9, 2.1, 2401, dtype=torch.float64)
    diff = (smooth_step(r.float()).double() - smooth_step(r.float().double())).abs().max().item()
    assert diff < 1e-6


def test_gradient_matches_autograd_and_finite_differences():
    r = torch.linspace(1.001, 1.999, 999, dtype=torch.float64).requires_grad_(True)
    (auto,) = torch.autograd.grad(smooth_step(r).sum(), r)
    grad = smooth_step_grad(r.detach())
    # absolute tolerance: autograd's sigmoid(z)(1 - sigmoid(z)) loses relative digits near r = 1
    assert torch.allclose(grad, auto, rtol=1e-8, atol=1e-12)
    h = 1e-6
    fd = (smooth_step(r.detach() + h) - smooth_step(r.detach() - h)) / (2 * h)
    assert torch.allclose(grad, fd, rtol=1e-6, atol=1e-9)
    assert bool((grad <= 0).all()) and bool((grad[5:-5] < 0).all())  # e^{-1000} underflows at the ends


def test_lipschitz_constant_is_two():
    # |phi'(1.5)| = sigmoid(0)^2 * (1/0.5^2 + 1/0.5^2) = 0.25 * 8 = 2 exactly
    assert SMOOTH_STEP_LIPSCHITZ == pytest.approx(2.0, abs=1e-12)
    assert smooth_step_grad(torch.tensor([1.5], dtype=torch.float64)).item() == pytest.approx(-2.0, abs=1e-15)
    # an independent maximization on each half (|phi'| is symmetric about 1.5) finds nothing higher
    for lo, hi in ((1.0001, 1.5), (1.5, 1.9999)):
        best = minimize_scalar(lambda s: -abs(phi_literal(s + 1e-7) - phi_literal(s - 1e-7)) / 2e-7,
                               bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
        assert -best.fun <= SMOOTH_STEP_LIPSCHITZ + 1e-6
    # secant slopes of random close pairs stay below the constant
    gen = torch.Generator().manual_seed(0)
    a = 0.8 + 1.4 * torch.rand(100_000, generator=gen, dtype=torch.float64)
    b = a + 1e-4 * torch.rand(100_000, generator=gen, dtype=torch.float64)
    slopes = (smooth_step(a) - smooth_step(b)).abs() / (b - a)
    assert slopes.max().item() <= SMOOTH_STEP_LIPSCHITZ
    assert slopes.max().item() > 1.999


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_shape_device_kept_and_nan_propagates(dtype):
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        r = torch.rand(4, 3, dtype=dtype, device=device) * 3
        for out in (smooth_step(r), smooth_step_grad(r)):
            assert out.shape == r.shape and out.dtype == dtype and out.device == r.device
    assert math.isnan(smooth_step(torch.tensor([float("nan")], dtype=dtype)).item())
