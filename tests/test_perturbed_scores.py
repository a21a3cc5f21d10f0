"""Perturbed score estimates of Cao, Chen, Sridharan, Wu (2026): Theorems 1, 7, 11 and a benign control.

Every estimate is checked against its formula (inner region exactly, outside exactly, annulus
against phi computed in scalar Python), its Lipschitz constant against an analytic bound (finite
differences on close pairs), and its closed-form masses / error bounds against Monte Carlo.
"""
from __future__ import annotations

import math

import pytest
import torch

from bench_core.components.protocols import TrainingData
from bench_plugins.scores import noisy as noisy_module
from bench_plugins.scores.noisy import NoisyScore
from bench_plugins.scores.traps import cone as cone_module
from bench_plugins.scores.traps import wells as wells_module
from bench_plugins.scores.traps.cone import ConeTrap
from bench_plugins.scores.traps.smooth_step import SMOOTH_STEP_LIPSCHITZ as LIP
from bench_plugins.scores.traps.wells import BallTrap, MemorizedScore
from bench_plugins.targets.gaussian import GaussianTarget
from reference_formulas import phi_ref

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def at_radius(center: torch.Tensor, rho: torch.Tensor, seed: int) -> torch.Tensor:
    """Points ``center + rho * v`` with v uniform on the unit sphere (float64, [len(rho), d])."""
    v = torch.randn(len(rho), center.shape[-1], generator=gen(seed), dtype=F64)
    return center + rho[:, None] * v / v.norm(dim=-1, keepdim=True)


def max_secant_slope(score, x: torch.Tensor, seed: int, delta: float = 1e-5, radial_from=None) -> float:
    """max ||s(x) - s(y)|| / ||x - y|| over pairs y = x + delta * unit vector (float64).

    Directions are random, or for ``radial_from`` given, radial (x - center) in every other pair:
    the phi' term of the Jacobian acts along the radius, where the slope is largest.
    """
    v = torch.randn(x.shape, generator=gen(seed), dtype=F64)
    if radial_from is not None:
        v[::2] = (x - radial_from)[::2]
    y = x + delta * v / v.norm(dim=-1, keepdim=True)
    return ((score(x, 0.0) - score(y, 0.0)).norm(dim=-1) / (x - y).norm(dim=-1)).max().item()


def within_5_se(log_mass: float, hits: torch.Tensor) -> None:
    """Closed-form mass p vs the Monte Carlo fraction: |p_hat - p| <= 5 sqrt(p (1 - p) / n)."""
    p, n = math.exp(log_mass), len(hits)
    p_hat = hits.double().mean().item()
    assert abs(p_hat - p) <= 5 * math.sqrt(p * (1 - p) / n), (p_hat, p)


def make_data(points: torch.Tensor) -> TrainingData:
    return TrainingData(train=points.repeat_interleave(2, dim=0), distinct=points, duplicate=2)


# ---------------------------------------------------------------- ball trap (Theorem 1)

def test_ball_trap_formula_inside_outside_annulus():
    target = GaussianTarget(5, mean=[0.5, -1.0, 2.0, 0.0, 1.0], std=1.3)
    c = torch.tensor([0.2, 0.1, -0.3, 0.0, 0.4], dtype=F64)
    est = BallTrap(target, None, radius=0.8, center=c.tolist())
    R = 0.8 * math.sqrt(5)
    assert est.radius == pytest.approx(R)
    inner = at_radius(c, R * torch.tensor([0.0, 0.3, 0.7, 0.999]), seed=1)
    assert torch.equal(est(inner, 0.0), -(inner - c))
    outer = at_radius(c, R * torch.tensor([2.0001, 2.5, 10.0, 1e6]), seed=2)
    assert torch.equal(est(outer, 0.0), target.score(outer, 0.0))
    rho = torch.linspace(1.02, 1.98, 49, dtype=F64)
    ring = at_radius(c, R * rho, seed=3)
    w = torch.tensor([phi_ref(r) for r in ((ring - c).norm(dim=-1) / R).tolist()], dtype=F64)[:, None]
    want = w * (-(ring - c)) + (1 - w) * target.score(ring, 0.0)
    assert torch.allclose(est(ring, 0.0), want, rtol=1e-12, atol=1e-12)
    assert est.region(torch.cat([inner, ring, outer])).tolist() == [True] * 53 + [False] * 4


def test_ball_trap_is_the_papers_estimate_and_admissible_forms_switch_off():
    target = GaussianTarget(20, mean=1.5)
    est = BallTrap(target, None)
    x = at_radius(torch.zeros(20, dtype=F64), torch.linspace(0, 3, 200, dtype=F64) * math.sqrt(20), seed=4)
    w = torch.tensor([phi_ref(r) for r in (x.norm(dim=-1) / math.sqrt(20)).tolist()], dtype=F64)[:, None]
    assert torch.allclose(est(x, 0.0), -x + (1 - w) * target.mean, rtol=1e-12, atol=1e-12)
    # ||mu|| = 6.7 < 2R = 8.9: pi already puts most of its mass in the ball, so the error at t = 0 is
    # far above the admissible budget and the time-t forms switch off at once (cutoff ~ 1e-5)
    assert est.cutoff < 1e-4
    for t in (1e-3, 0.5, 2.0):
        assert torch.equal(est(x, t), target.score(x, t))


def test_ball_trap_lipschitz_bound():
    # N(mu, s^2 I): s_hat = -(x - c) + (1 - phi)((1 - 1/s^2)(x - c) + (mu - c)/s^2), so
    # Lip <= max(1, 1/s^2) + LIP (|1 - 1/s^2| 2R + ||mu - c|| / s^2) / R  (the phi' term on the annulus).
    for s, mean, center in ((1.0, 2.0, 0.0), (1.3, 0.7, 0.3)):
        target = GaussianTarget(10, mean=mean, std=s)
        est = BallTrap(target, None, radius=0.9, center=center)
        R, c = est.radius, est.center
        bound = max(1, 1 / s**2) + LIP * (abs(1 - 1 / s**2) * 2 * R + (target.mean - c).norm().item() / s**2) / R
        x = at_radius(c, R * 2.6 * torch.rand(20000, generator=gen(5), dtype=F64), seed=6)
        slope = max_secant_slope(est, x, seed=7, radial_from=c)
        assert slope <= bound
        if s == 1.0:  # here the bound is nearly attained (5.33 of 5.44) by radial pairs in the annulus;
            assert slope > 0.95 * bound  # for s != 1 the radial terms partly cancel (1.00 of 3.16)


def test_ball_trap_error_is_tiny_yet_bounded():
    """PAPER, Theorem 1: E_pi ||s_hat - grad log pi||^2 is 0 to all digits for a >= 3 at d = 50."""
    d, n = 50, 20000
    bounds = {}
    for a in (1, 2, 3, 5, 7):
        target = GaussianTarget(d, mean=float(a))
        est = BallTrap(target, None)
        x = target.sample(n, gen(100 + a)).to(F64)
        mc = ((est(x, 0.0) - target.score(x, 0.0)) ** 2).sum(-1).mean().item()
        bounds[a] = est.error_log_bound(target)
        assert math.isfinite(bounds[a])
        if a == 1:
            assert mc > 1.0 and math.log(mc) <= bounds[a]  # trap overlaps pi: error is large
        elif a == 2:
            assert 0 < mc and math.log(mc) <= bounds[a]
        else:
            assert mc == 0.0 and bounds[a] < math.log(1e-6)
    assert bounds[3] == pytest.approx(-32.901, abs=1e-3)
    assert bounds[7] == pytest.approx(-652.834, abs=1e-3)  # far below float underflow, still finite
    assert bounds[1] > bounds[2] > bounds[3] > bounds[5] > bounds[7]


def test_ball_trap_error_bound_valid_for_scaled_shifted_gaussian():
    target = GaussianTarget(5, mean=0.5, std=1.5)
    est = BallTrap(target, None, radius=0.8, center=0.2)
    x = target.sample(20000, gen(11)).to(F64)
    mc = ((est(x, 0.0) - target.score(x, 0.0)) ** 2).sum(-1).mean().item()
    assert 0 < mc and math.log(mc) <= est.error_log_bound(target)
    assert est.error_log_bound(GaussianTarget(5, std=[1, 1, 1, 1, 2])) is None  # not isotropic
    exact = BallTrap(GaussianTarget(3, mean=1.0), None, center=1.0)  # s_hat is the true score
    assert exact.error_log_bound(GaussianTarget(3, mean=1.0)) == -math.inf


def test_ball_trap_region_log_mass_against_monte_carlo():
    cases = ((GaussianTarget(50, mean=2.0), {}),                      # p ~ 0.042
             (GaussianTarget(5, mean=0.5, std=1.5), {"radius": 0.8, "center": 0.2}))
    for k, (target, params) in enumerate(cases):
        est = BallTrap(target, None, **params)
        hits = est.region(target.sample(20000, gen(20 + k)).to(F64))
        within_5_se(est.region_log_mass(target), hits)
    assert BallTrap(GaussianTarget(50, mean=7.0), None).region_log_mass(GaussianTarget(50, mean=7.0)) \
        == pytest.approx(-660.638, abs=1e-3)


@pytest.mark.parametrize("params, name", [({"radius": 0}, "radius"), ({"radius": -1.0}, "radius"),
                                          ({"center": [1.0, 2.0]}, "center"), ({"center": "x"}, "center")])
def test_ball_trap_rejects_bad_params(params, name):
    with pytest.raises(ValueError, match=name):
        BallTrap(GaussianTarget(3), None, **params)


# ---------------------------------------------------------------- memorized (Theorem 7)

def test_general_position():
    def build(d: int, seed: int = 0) -> MemorizedScore:
        pts = torch.randn(100, d, generator=gen(seed), dtype=F64)
        return MemorizedScore(GaussianTarget(d), make_data(pts))

    high = build(100)  # expected violating pairs: 4950 P(chi2_100 < 50) = 0.03
    assert high.general_position and high.wells_disjoint
    assert not build(2).general_position
    # d = 50 is *not* enough for 100 points: 4950 P(chi2_50 < 25) = 5.9 expected pairs closer than
    # sqrt(d); with this seed the closest pair is 0.960 sqrt(d) apart.
    mid = build(50)
    pts = torch.randn(100, 50, generator=gen(0), dtype=F64)
    dist = torch.cdist(pts, pts) + torch.diag(torch.full((100,), math.inf, dtype=F64))
    assert {k: v for k, v in mid.diagnostics().items() if k not in ("cutoff", "admissible")} == {
        "general_position": 0.0, "n_wells": 100.0, "wells_disjoint": 0.0,
                                 "min_separation_over_sqrt_d": pytest.approx(dist.min().item() / math.sqrt(50))}
    assert mid.diagnostics()["min_separation_over_sqrt_d"] == pytest.approx(0.9603, abs=1e-4)


@pytest.fixture(scope="module")
def wells():
    target = GaussianTarget(100)
    pts = target.sample(200, gen(30)).to(F64)
    return target, pts, MemorizedScore(target, make_data(pts), lam=32.0)


def test_memorized_formula(wells):
    target, pts, est = wells
    assert est.general_position and est.wells_disjoint
    r = 0.25 * math.sqrt(100)
    for dtype in (torch.float32, F64):  # particles exactly at a training point feel no force
        assert torch.equal(est(pts.to(dtype), 0.0), torch.zeros(200, 100, dtype=dtype))
    idx = torch.arange(200).repeat(3)
    inner = at_radius(pts[idx], r * torch.rand(600, generator=gen(31), dtype=F64), seed=32)
    assert torch.equal(est(inner, 0.0), -32.0 * (inner - pts[idx]))
    ring = at_radius(pts[idx], r * (1.01 + 0.98 * torch.rand(600, generator=gen(33), dtype=F64)), seed=34)
    w = torch.tensor([phi_ref(q) for q in ((ring - pts[idx]).norm(dim=-1) / r).tolist()], dtype=F64)[:, None]
    want = w * (-32.0 * (ring - pts[idx])) + (1 - w) * (-ring)
    assert torch.allclose(est(ring, 0.0), want, rtol=1e-12, atol=1e-12)
    far = target.sample(2000, gen(35)).to(F64)
    far = far[~est.region(far)]
    assert len(far) > 1900 and torch.equal(est(far, 0.0), target.score(far, 0.0))
    assert est.region(inner).all() and est.region(ring).all()
    assert torch.equal(est(ring, 0.7), target.score(ring, 0.7))


def test_memorized_nearest_point_matches_brute_force():
    target = GaussianTarget(100)
    pts = target.sample(1000, gen(40)).to(F64)
    est = MemorizedScore(target, make_data(pts))
    near = pts + 0.3 * torch.randn(1000, 100, generator=gen(42), dtype=F64)  # inside the wells
    x = torch.cat([target.sample(4000, gen(41)).to(F64), near])
    nearest = torch.cdist(x, pts).argmin(dim=-1)
    assert torch.equal(est.offset(x), x - pts[nearest])
    dist = torch.cdist(x, pts).min(dim=-1).values
    assert torch.equal(est.region(x), dist < 2 * est.radius)


def test_memorized_lipschitz_bound(wells):
    # N(0, I), disjoint wells: s_hat = -x + phi (x - lam y) with y = x - x_i, so
    # Lip <= max(1, lam) + LIP (max_i ||x_i|| + |1 - lam| 2r) / r.
    _, pts, est = wells
    r, lam = est.radius, est.lam
    bound = max(1, lam) + LIP * (pts.norm(dim=-1).max().item() + abs(1 - lam) * 2 * r) / r
    idx = torch.arange(200).repeat(50)
    x = at_radius(pts[idx], r * 2.3 * torch.rand(len(idx), generator=gen(43), dtype=F64), seed=44)
    slope = max_secant_slope(est, x, seed=45, radial_from=pts[idx])
    assert lam <= slope <= bound


def test_memorized_rejects_bad_params():
    target = GaussianTarget(3)
    data = make_data(torch.randn(10, 3, generator=gen(0), dtype=F64))
    for params, name in (({"lam": 0.0}, "lam"), ({"radius": -1}, "radius"), ({"lam": "big"}, "lam")):
        with pytest.raises(ValueError, match=name):
            MemorizedScore(target, data, **params)
    with pytest.raises(ValueError, match="data"):
        MemorizedScore(target, None)
    with pytest.raises(ValueError, match="data"):
        MemorizedScore(GaussianTarget(4), data)


# ---------------------------------------------------------------- cone trap (Theorem 11)

def test_cone_trap_formula_and_region():
    target = GaussianTarget(3, mean=[0.5, 0.0, -1.0])
    est = ConeTrap(target, None, half_angle=0.4, axis=[0.0, 3.0, 4.0], drift=2.5)
    u = torch.tensor([0.0, 0.6, 0.8], dtype=F64)
    assert torch.allclose(est.axis, u, atol=1e-15)
    x = 3 * torch.randn(5000, 3, generator=gen(50), dtype=F64)
    angle = torch.tensor([math.acos(max(-1.0, min(1.0, v))) for v in ((x @ u) / x.norm(dim=-1)).tolist()])
    inside = est.region(x)
    assert torch.equal(inside, angle <= 0.4)
    assert 50 < int(inside.sum()) < 500
    out = est(x, 0.0)
    assert torch.equal(out[inside], (2.5 * u).expand(int(inside.sum()), 3))
    assert torch.equal(out[~inside], target.score(x[~inside], 0.0))
    assert torch.equal(est(x, 0.3), target.score(x, 0.3))
    default = ConeTrap(GaussianTarget(4), None)
    assert torch.equal(default.axis, torch.tensor([1.0, 0, 0, 0], dtype=F64)) and default.half_angle == 0.3


def test_cone_trap_region_log_mass():
    assert ConeTrap(GaussianTarget(2), None, half_angle=0.3).region_log_mass(GaussianTarget(2)) \
        == pytest.approx(math.log(0.3 / math.pi), rel=1e-12)
    # d = 3: the cap of a uniform direction has mass (1 - cos theta) / 2 (Archimedes)
    assert ConeTrap(GaussianTarget(3), None, half_angle=0.5).region_log_mass(GaussianTarget(3, std=2.0)) \
        == pytest.approx(math.log((1 - math.cos(0.5)) / 2), rel=1e-12)
    for k, (d, theta, std) in enumerate(((1, 0.2, 1.0), (6, 0.7, 1.0), (20, 1.2, 3.0))):
        target = GaussianTarget(d, std=std)
        est = ConeTrap(target, None, half_angle=theta, axis=[1.0] * d)
        within_5_se(est.region_log_mass(target), est.region(target.sample(20000, gen(60 + k)).to(F64)))
    # finite even far below float underflow (d = 2000: mass ~ e^{-2450})
    assert -3000 < ConeTrap(GaussianTarget(2000), None).region_log_mass(GaussianTarget(2000)) < -2000
    assert ConeTrap(GaussianTarget(3, mean=1.0), None).region_log_mass(GaussianTarget(3, mean=1.0)) is None


@pytest.mark.parametrize("params, name", [
    ({"half_angle": 0.0}, "half_angle"), ({"half_angle": math.pi / 2}, "half_angle"),
    ({"half_angle": -0.1}, "half_angle"), ({"axis": [0.0, 0.0, 0.0]}, "axis"),
    ({"axis": [1.0, 2.0]}, "axis"), ({"axis": 1.0}, "axis"), ({"drift": 0.0}, "drift")])
def test_cone_trap_rejects_bad_params(params, name):
    with pytest.raises(ValueError, match=name):
        ConeTrap(GaussianTarget(3), None, **params)


# ---------------------------------------------------------------- noisy (benign control)

@pytest.mark.parametrize("eps", [0.1, 0.5])
def test_noisy_l2_error_is_eps(eps):
    target = GaussianTarget(10, mean=1.0, std=0.8)
    est = NoisyScore(target, None, eps=eps)
    x = target.sample(20000, gen(70)).to(F64)  # fresh draws, not the ones that normalized F
    err = ((est(x, 0.0) - target.score(x, 0.0)) ** 2).sum(-1).mean().sqrt().item()
    assert abs(err / eps - 1) < 0.03
    x = x[:1000]
    for t in (0.0, 0.5):  # perturbed at every t
        assert torch.allclose(est(x, t) - target.score(x, t), eps * est.field(x), atol=1e-12)
    assert est.error_log_bound(target) == pytest.approx(2 * math.log(eps))


def test_noisy_lipschitz_and_determinism():
    # Lip(s_hat) <= 1/s^2 (score of N(mu, s^2 I)) + eps kappa sqrt(2/m) sum_j ||a_j|| ||w_j||.
    target = GaussianTarget(10, mean=1.0, std=0.8)
    est = NoisyScore(target, None, eps=0.5, n_features=32, bandwidth=0.5, seed=3)
    x = 3 * torch.randn(5000, 10, generator=gen(71), dtype=F64)
    slope = max_secant_slope(est, x, seed=72)
    assert 1 / 0.8**2 < slope <= 1 / 0.8**2 + est.lipschitz_bound()
    same = NoisyScore(target, None, eps=0.5, n_features=32, bandwidth=0.5, seed=3)
    assert torch.equal(est(x, 0.0), same(x, 0.0))
    other = NoisyScore(target, None, eps=0.5, n_features=32, bandwidth=0.5, seed=4)
    assert not torch.equal(est.field(x), other.field(x))
    zero = NoisyScore(target, None, eps=0.0)
    assert torch.equal(zero(x, 0.0), target.score(x, 0.0)) and zero.error_log_bound(target) == -math.inf


@pytest.mark.parametrize("params, name", [({"eps": -0.1}, "eps"), ({"n_features": 0}, "n_features"),
                                          ({"bandwidth": 0.0}, "bandwidth"), ({"seed": -1}, "seed"),
                                          ({"seed": 1.5}, "seed")])
def test_noisy_rejects_bad_params(params, name):
    with pytest.raises(ValueError, match=name):
        NoisyScore(GaussianTarget(3), None, **params)


# ---------------------------------------------------------------- all four

def build_all(target: GaussianTarget, data: TrainingData) -> dict:
    return {"ball_trap": BallTrap(target, data), "memorized": MemorizedScore(target, data),
            "cone_trap": ConeTrap(target, data), "noisy": NoisyScore(target, data)}


def test_registration():
    seen = {}
    for module in (cone_module, noisy_module, wells_module):
        module.register_scores(register=lambda name, factory, *, description="": seen.update(
            {name: (factory, description)}))
    assert {k: v[0] for k, v in seen.items()} == {"ball_trap": BallTrap, "memorized": MemorizedScore,
                                                  "cone_trap": ConeTrap, "noisy": NoisyScore}
    assert all(desc and "\n" not in desc for _, desc in seen.values())


def test_dtype_device_and_optional_interface():
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        target = GaussianTarget(6, mean=0.5)
        pts = target.sample(50, torch.Generator(device=device).manual_seed(80))
        ests = build_all(target, make_data(pts))
        x64 = 2 * torch.randn(300, 6, generator=gen(81), dtype=F64).to(device)
        for name, est in ests.items():
            ref = est(x64, 0.0)
            for dtype in (torch.float32, F64):
                x = x64.to(dtype)
                for t in (0.0, 0.5):
                    out = est(x, t)
                    assert out.dtype == dtype and out.device == x.device and out.shape == x.shape, name
                    assert torch.isfinite(out).all(), name
                if hasattr(est, "region"):
                    mask = est.region(x)
                    assert mask.dtype == torch.bool and mask.shape == (300,) and mask.device == x.device
            # float32 agrees with float64 (the cone's discontinuity can flip a boundary point)
            close = torch.isclose(est(x64.float(), 0.0).double(), ref, rtol=1e-4, atol=1e-4).all(-1)
            assert close.double().mean().item() >= (0.99 if name == "cone_trap" else 1.0), name
            assert isinstance(est.diagnostics(), dict)
            for method in ("error_log_bound", "region_log_mass"):
                value = getattr(est, method)(target)
                assert value is None or isinstance(value, float), (name, method)
    assert not hasattr(NoisyScore(GaussianTarget(2), None), "region")


def test_conformance_kit():
    from bench_core.kit import check_score

    for target in (GaussianTarget(2, mean=1.0), GaussianTarget(20, mean=[0.1 * k for k in range(20)], std=1.5)):
        for est in build_all(target, make_data(target.sample(200, gen(90)))).values():
            check_score(est, target)
