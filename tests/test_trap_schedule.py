"""Time-indexed forms of the perturbed estimates (plugins/scores/time_forms.py, plugins/scores/traps/wells.py).

The admissible cutoff is checked against its definition: the first t at which the error bound of
the naive form, ``err(t) >= E_{p_t}||s_hat_t - s_t||^2``, exceeds the budget. The bound is recomputed
here independently with scipy (noncentral chi-square masses times the squared sup of the
deviation) and checked against Monte Carlo of the true error where Monte Carlo can resolve it.
"""
from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import ncx2

from bench_core.components.protocols import TrainingData
from bench_plugins.scores.noisy import NoisyScore
from bench_plugins.scores.time_forms import first_crossing
from bench_plugins.scores.traps.cone import ConeTrap
from bench_plugins.scores.traps.wells import BallTrap, MemorizedScore
from bench_plugins.targets.gaussian import GaussianTarget
from bench_plugins.targets.gmm import GMMTarget
from reference_formulas import phi_ref

F64 = torch.float64


def noised(target, n: int, t: float, seed: int) -> torch.Tensor:
    """``n`` draws of p_t: ``e^{-t} x_0 + sqrt(1 - e^{-2t}) z`` (float64)."""
    gen = torch.Generator().manual_seed(seed)
    x0 = target.sample(n, gen).to(F64)
    return math.exp(-t) * x0 + math.sqrt(1 - math.exp(-2 * t)) * torch.randn(x0.shape, generator=gen, dtype=F64)


def mc_error(est, target, t: float, n: int = 20_000, seed: int = 0) -> tuple[float, float]:
    """Monte Carlo mean and standard error of ``||s_hat_t - s_t||^2`` under p_t."""
    x = noised(target, n, t, seed)
    err = (est(x, t) - target.score(x, t)).pow(2).sum(-1)
    return float(err.mean()), float(err.std()) / math.sqrt(n)


def test_first_crossing_refines_to_the_root():
    assert first_crossing(lambda t: t * t, 0.25) == pytest.approx(0.5, abs=1e-12)
    assert first_crossing(lambda t: 0.0, 0.25) == math.inf
    # already above the budget at the first grid time: the root lies in (0, 1e-5)
    assert 0 < first_crossing(lambda t: 1.0, 0.25) <= 1e-5


def test_naive_ball_trap_is_papers_time_indexed_form():
    """PAPER: s_hat_t = -x + (1 - phi(||x|| / R)) e^{-t} mu for pi = N(mu, I), at every t."""
    d, a = 20, 1.5
    target = GaussianTarget(d, mean=a)
    est = BallTrap(target, None, schedule="naive")
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(300, d, generator=gen, dtype=F64) * 2.0
    mu = torch.full((d,), a, dtype=F64)
    for t in (0.0, 0.1, 0.5, 2.0):
        w = torch.tensor([phi_ref(r) for r in (x.norm(dim=-1) / math.sqrt(d)).tolist()], dtype=F64)[:, None]
        want = -x + (1 - w) * math.exp(-t) * mu
        assert torch.allclose(est(x, t), want, rtol=1e-12, atol=1e-12)
    assert est.cutoff == math.inf and all(est.active(t) for t in (0.0, 1.0, 10.0))


def ball_bound(t: float, d: int, mu_norm: float) -> float:
    """Independent form of the ball-trap error bound for N(mu, I), c = 0: p_t = N(e^{-t} mu, I), the
    deviation phi (-x + (x - e^{-t} mu)) has norm <= e^{-t} ||mu|| and vanishes outside ||x|| <= 2R."""
    radius = math.sqrt(d)
    return ncx2.cdf(4 * radius**2, d, math.exp(-2 * t) * mu_norm**2) * math.exp(-2 * t) * mu_norm**2


def test_ball_trap_admissible_cutoff_against_the_definition():
    d, a = 50, 3.0
    target = GaussianTarget(d, mean=a)
    est = BallTrap(target, None, budget=1e-3)
    cut = est.cutoff
    mu_norm = a * math.sqrt(d)
    # the cutoff is the first crossing of the bound: below it <= budget, at it > budget
    assert ball_bound(cut * (1 - 1e-9), d, mu_norm) <= 1e-3 < ball_bound(cut, d, mu_norm) * (1 + 1e-9)
    assert est.error_bound(cut / 2) == pytest.approx(ball_bound(cut / 2, d, mu_norm), rel=1e-9)
    grid = torch.linspace(0, cut, 200)[1:-1].tolist()
    assert max(ball_bound(t, d, mu_norm) for t in grid) <= 1e-3  # no earlier crossing
    assert cut == pytest.approx(0.2177, abs=1e-3)
    # the bound is a bound: Monte Carlo of the true error (5 standard errors) where it is resolvable
    naive = BallTrap(target, None, schedule="naive")
    for t in (0.5, 0.8, 1.5):
        mean, se = mc_error(naive, target, t)
        assert mean <= ball_bound(t, d, mu_norm) + 5 * se
    # schedule: naive form below the cutoff, exact score from it on, the same estimate at t = 0
    x = noised(target, 500, 0.1, seed=3) * 0.2  # points inside the ball, where the forms differ
    for t in (0.0, cut / 2):
        assert torch.equal(est(x, t), naive(x, t))
    assert not torch.equal(naive(x, cut * 1.01), target.score(x, cut * 1.01))
    assert torch.equal(est(x, cut * 1.01), target.score(x, cut * 1.01))
    assert torch.equal(est.deviation(x, 2.0), torch.zeros_like(x))
    assert est.diagnostics() == {"cutoff": cut, "admissible": 1.0}


def test_memorized_naive_form_and_cutoff_against_the_definition():
    d, n_wells, lam = 50, 40, 32.0
    target = GaussianTarget(d)
    pts = target.sample(n_wells, torch.Generator().manual_seed(7)).to(F64)
    data = TrainingData(pts, pts, 1)
    naive = MemorizedScore(target, data, lam=lam, schedule="naive")
    est = MemorizedScore(target, data, lam=lam)
    r = 0.25 * math.sqrt(d)

    # naive form at t: the well of N(e^{-t} x_i, nu_t I), radius r sqrt(lam nu_t), around the nearest x_i
    t = 0.05
    nu = math.exp(-2 * t) / lam + 1 - math.exp(-2 * t)
    r_t = r * math.sqrt(lam * nu)
    x = math.exp(-t) * pts[:25] + 0.15 * torch.randn(25, d, generator=torch.Generator().manual_seed(8), dtype=F64)
    y = x - math.exp(-t) * pts[:25]  # the nearest center (wells are sqrt(d) apart, offsets ~ 1)
    w = torch.tensor([phi_ref(v) for v in (y.norm(dim=-1) / r_t).tolist()], dtype=F64)[:, None]
    assert torch.allclose(naive(x, t), w * (-y / nu) + (1 - w) * (-x), rtol=1e-10, atol=1e-12)

    def bound(s: float) -> float:  # union bound: sum_i p_t(well_i) * sup^2, p_t = N(0, I)
        nu_s = math.exp(-2 * s) / lam + 1 - math.exp(-2 * s)
        rho = r * math.sqrt(lam * nu_s)
        nc = (math.exp(-2 * s) * pts.pow(2).sum(-1)).numpy()
        mass = ncx2.cdf(4 * rho**2, d, nc).sum()
        sup = abs(1 - 1 / nu_s) * 2 * rho + math.exp(-s) * float(pts.norm(dim=-1).max())
        return mass * sup**2

    cut = est.cutoff
    assert bound(cut * (1 - 1e-9)) <= 1e-3 < bound(cut) * (1 + 1e-9)
    assert max(bound(s) for s in torch.linspace(0, cut, 100)[1:-1].tolist()) <= 1e-3
    for s in (0.05, 0.2):  # true error <= bound where Monte Carlo resolves it
        mean, se = mc_error(naive, target, s)
        assert mean > 1e-3 and mean <= bound(s) + 5 * se
    # the naive form's error is large at intermediate t: the time average is Theta(1), not small
    assert mc_error(naive, target, 0.2)[0] > 1.0


def test_ball_trap_bound_holds_on_a_mixture_target():
    """Isotropic mixtures get the same closed-form bound (sum over components); check it by MC."""
    target = GMMTarget(dim=4, weights=[0.5, 0.5], means=[-1.0, 1.5], std=[1.0, 0.7])
    est = BallTrap(target, None, radius=0.5, schedule="naive")
    for t in (0.0, 0.3, 1.0):
        mean, se = mc_error(est, target, t)
        assert mean > 0 and mean <= est.error_bound(t) + 5 * se


def test_cone_trap_bound_cutoff_and_naive_form():
    target = GaussianTarget(2)
    naive = ConeTrap(target, None, half_angle=0.3, schedule="naive")
    for t in (0.0, 0.2, 1.0):
        mean, se = mc_error(naive, target, t, n=50_000)
        assert mean <= naive.error_bound(t) + 5 * se
    # pi(K) = 0.3 / pi makes the error ~0.3 >> budget already at t = 0: admissible forms switch off
    est = ConeTrap(target, None, half_angle=0.3)
    assert 0 < est.cutoff <= 1e-5
    x = torch.tensor([[2.0, 0.1], [0.0, 1.0]], dtype=F64)
    assert torch.equal(naive(x, 0.5)[0], torch.tensor([1.0, 0.0], dtype=F64))
    assert torch.equal(est(x, 0.5), target.score(x, 0.5))
    # in d = 50 the cone holds ~1e-17 of the mass: admissible at every t
    assert ConeTrap(GaussianTarget(50), None).cutoff == math.inf


def test_noisy_is_perturbed_at_every_t_by_default():
    target = GaussianTarget(5, mean=1.0)
    est = NoisyScore(target, None, eps=0.5)
    x = noised(target, 100, 0.0, seed=2)
    for t in (0.0, 0.7, 5.0):
        assert torch.allclose(est(x, t) - target.score(x, t), 0.5 * est.field(x), atol=1e-12)
    assert est.cutoff == math.inf
    admissible = NoisyScore(target, None, eps=0.5, schedule="admissible", budget=1e-3)
    assert admissible.cutoff < 1e-4  # eps^2 = 0.25 > budget from the start
    with pytest.raises(ValueError, match="schedule"):
        NoisyScore(target, None, schedule="sometimes")
    with pytest.raises(ValueError, match="budget"):
        BallTrap(target, None, budget=-1.0)


def test_the_naive_schedule_refuses_the_params_only_the_admissible_one_reads():
    target = GaussianTarget(5, mean=1.0)
    for make, name in [(lambda: BallTrap(target, None, schedule="naive", budget=1e-2), "budget"),
                       (lambda: NoisyScore(target, None, budget=1e-2), "budget"),  # noisy is naive by default
                       (lambda: ConeTrap(target, None, schedule="naive", n_mc=512), "n_mc")]:
        with pytest.raises(ValueError, match=f"^parameter '{name}' is not used when schedule = 'naive' "
                                             r"\(schedule 'naive' uses none of budget"):
            make()
    # the defaults are those the admissible schedule read before (budget 1e-3, 4096 Monte Carlo draws)
    admissible, naive = ConeTrap(target, None), ConeTrap(target, None, schedule="naive")
    assert (admissible.budget, admissible.n_mc) == (naive.budget, naive.n_mc) == (1e-3, 4096)
    assert ConeTrap(target, None, budget=1e-2, n_mc=512).n_mc == 512
