"""Diffusion samplers (plugins/samplers/ddpm.py, ddim.py, annealed_langevin.py) and their schedules (plugins/samplers/schedules.py).

Three kinds of checks:

1. Every update against a step computed by hand here, with the same noise (drawn from a copy of
   the generator), to 1e-12 in float64; the callback, the score query times and ``score_times()``.
2. Exact laws. For a Gaussian target ``N(m 1, s^2 I)`` the OU marginal is ``p_t = N(mu_t 1, v_t I)``,
   ``mu_t = e^{-t} m``, ``v_t = e^{-2t} s^2 + 1 - e^{-2t}``, and the exact score
   ``(mu_t - x) / v_t`` is affine. Every update here is ``x' = c_x x + c_s s(x, t) + c_z z``, hence
   ``x' = A x + B + C z`` with ``A = c_x - c_s / v_t``, ``B = c_s mu_t / v_t``, ``C = c_z``: started
   from ``N(0, I)`` the output is ``N(mu 1, v I)`` with ``mu <- A mu + B``, ``v <- A^2 v + C^2``
   (coordinates independent). That gives the discretization error without Monte Carlo noise.
3. Monte Carlo with the defaults and the exact score, against that exact law and against the
   acceptance bound ``gaussian_kl - d(d+3)/(4n) < 0.05``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import digamma

from bench_plugins.metrics.moments import gaussian_fit_kl
from bench_plugins.samplers import annealed_langevin as annealed_module
from bench_plugins.samplers import ddim as ddim_module
from bench_plugins.samplers import ddpm as ddpm_module
from bench_plugins.samplers.annealed_langevin import AnnealedLangevin, annealed_langevin
from bench_plugins.samplers.ddim import DDIM, ddim
from bench_plugins.samplers.ddpm import DDPM, ddpm_ancestral, ou_exponential_integrator
from bench_plugins.samplers.schedules import (evenly_spaced_levels, linear_beta_alpha_bars, linear_betas, ou_alpha_bar,
                                              ou_coefficients, ou_time, time_grid)
from bench_plugins.targets.gaussian import GaussianTarget

M_2D = torch.tensor([1.0, -2.0], dtype=torch.float64)
S_2D = torch.tensor([0.5, 2.0], dtype=torch.float64)


def marginal(m: float, s: float, t: float) -> tuple[float, float]:
    """Mean and variance of one coordinate of ``p_t`` for the target ``N(m, s^2)``."""
    decay = math.exp(-2.0 * t)
    return math.exp(-t) * m, decay * s * s + 1.0 - decay


def exact(x, t):
    """Exact score of ``p_t`` for the target ``N(M_2D, diag(S_2D^2))``, by hand:
    ``(e^{-t} m - x) / (e^{-2t} s^2 + 1 - e^{-2t})``, linear in x."""
    decay = math.exp(-t)
    return (decay * M_2D - x) / (decay**2 * S_2D**2 + 1.0 - decay**2)


def recording_score(log: list[float]):
    """:func:`exact`, appending each query time to ``log``."""

    def score(x, t):
        log.append(t)
        return exact(x, t)

    return score


def run_2d(sampler, n: int = 5, seed: int = 7):
    """Run ``sampler`` on ``n`` particles in d = 2 (float64); return the states (x0, then one per step),
    the callback times, the score query times, a copy of the generator taken before sampling and the
    generator the sampler used."""
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x0_copy = x0.clone()
    generator = torch.Generator().manual_seed(seed + 1)
    hand = torch.Generator()
    hand.set_state(generator.get_state())
    states, times, queries = [x0], [], []

    def callback(step, t, x):
        assert step == len(states)
        states.append(x.clone())
        times.append(t)

    out = sampler.sample(recording_score(queries), x0, generator=generator, callback=callback)
    assert torch.equal(x0, x0_copy), "the sampler modified its input"
    assert torch.equal(out, states[-1])
    return states, times, queries, hand, generator


def close(got, expected):
    torch.testing.assert_close(got, expected, rtol=0.0, atol=1e-12)


def check_score_times(sampler, queries, final_time, repeats=1):
    pairs = sampler.score_times()
    assert [t for t, _ in pairs for _ in range(repeats)] == queries
    assert all(t > 0 for t in queries) and all(h > 0 for _, h in pairs)
    assert sum(h for _, h in pairs) == pytest.approx(sampler.T - final_time, rel=1e-12)


# ----------------------------------------------------------------------------- schedules

def test_linear_schedule_endpoints_rescaling_and_ou_time():
    betas = linear_betas(1000)
    assert betas.dtype == torch.float64 and betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(0.02)
    coarse = linear_betas(100)  # endpoints x 1000 / 100
    assert coarse[0] == pytest.approx(1e-3) and coarse[-1] == pytest.approx(0.2)
    ab = linear_beta_alpha_bars(1000)
    assert ab.shape == (1000,) and ab[0] == pytest.approx(1 - 1e-4)
    assert float(ab[-1]) == pytest.approx(float(torch.prod(1 - betas)), rel=1e-12)
    # the horizon t_K stays about sum(beta) / 2 = 5.03 (exactly 5.06 at 1000 levels, 5.40 at 100)
    assert float(ou_time(ab[-1])) == pytest.approx(5.0589, abs=1e-4)
    assert float(ou_time(linear_beta_alpha_bars(100)[-1])) == pytest.approx(5.4002, abs=1e-4)
    assert ou_alpha_bar(ou_time(0.3)) == pytest.approx(0.3, rel=1e-14) and str(ou_time(1.0)) == "0.0"
    a, sigma = ou_coefficients(0.7)
    assert a == pytest.approx(math.exp(-0.7)) and a**2 + sigma**2 == pytest.approx(1.0, rel=1e-15)


def test_time_grids_and_evenly_spaced_levels():
    uniform = time_grid(2.0, 0.0, 4, "uniform")
    assert uniform.tolist() == [2.0, 1.5, 1.0, 0.5, 0.0]
    geometric = time_grid(10.0, 1e-3, 8, "geometric")
    ratios = geometric[1:] / geometric[:-1]
    assert geometric[0] == 10.0 and geometric[-1] == 1e-3 and len(geometric) == 9
    assert torch.allclose(ratios, torch.full_like(ratios, 1e-4 ** (1 / 8)), rtol=1e-12)  # log-uniform
    assert evenly_spaced_levels(6) == [1000, 800, 600, 401, 201, 1] and evenly_spaced_levels(1) == [1000]
    levels = evenly_spaced_levels(1000)
    assert levels == list(range(1000, 0, -1))
    assert len(set(evenly_spaced_levels(333))) == 333


# ----------------------------------------------------------------------------- one step by hand

def test_ddpm_ancestral_every_step_by_hand():
    sampler = DDPM(n_steps=25)
    states, times, queries, hand, generator = run_2d(sampler)
    betas = linear_betas(25)
    t = [0.0] + (-0.5 * torch.log(torch.cumprod(1 - betas, 0))).tolist()
    assert sampler.T == t[-1] and len(states) == 26
    for j in range(1, 26):
        k = 26 - j  # level k = K .. 1
        beta = float(betas[k - 1])
        x = states[j - 1]
        expected = (x + beta * exact(x, t[k])) / math.sqrt(1 - beta)
        if k > 1:  # no noise at the last step
            expected = expected + math.sqrt(beta) * torch.randn(5, 2, generator=hand, dtype=torch.float64)
        close(states[j], expected)
        assert times[j - 1] == pytest.approx(t[k - 1], abs=1e-15)
    assert times[-1] == 0.0
    check_score_times(sampler, queries, final_time=0.0)


@pytest.mark.parametrize("grid", ["geometric", "uniform"])
def test_ddpm_exponential_every_step_by_hand(grid):
    N, T, t_min = 8, 2.0, 0.01
    sampler = DDPM(discretization="exponential", n_steps=N, T=T, t_min=t_min, grid=grid)
    states, times, queries, hand, generator = run_2d(sampler)
    if grid == "geometric":
        t = [T * (t_min / T) ** (k / N) for k in range(N + 1)]
    else:
        t = [T - k * (T - t_min) / N for k in range(N + 1)]
    for k in range(N):
        h, x = t[k] - t[k + 1], states[k]
        z = torch.randn(5, 2, generator=hand, dtype=torch.float64)
        expected = math.exp(h) * x + 2 * (math.exp(h) - 1) * exact(x, t[k]) + math.sqrt(math.exp(2 * h) - 1) * z
        close(states[k + 1], expected)
        assert times[k] == pytest.approx(t[k + 1], rel=1e-13)
    assert times[-1] == t_min and sampler.T == T
    check_score_times(sampler, queries, final_time=t_min)


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_every_step_by_hand(eta):
    sampler = DDIM(n_steps=6, eta=eta)
    states, times, queries, hand, generator = run_2d(sampler)
    levels = [1000, 800, 600, 401, 201, 1]  # round(1000 - i * 999 / 5)
    alpha_bars = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    ab = [float(alpha_bars[level - 1]) for level in levels] + [1.0]
    for i in range(6):
        now, prev, x = ab[i], ab[i + 1], states[i]
        s = exact(x, -0.5 * math.log(now))
        x0_hat = (x + (1 - now) * s) / math.sqrt(now)
        eps_hat = -math.sqrt(1 - now) * s
        sigma = eta * math.sqrt((1 - prev) / (1 - now)) * math.sqrt(1 - now / prev)
        expected = math.sqrt(prev) * x0_hat + math.sqrt(1 - prev - sigma**2) * eps_hat
        if sigma > 0:
            expected = expected + sigma * torch.randn(5, 2, generator=hand, dtype=torch.float64)
        close(states[i + 1], expected)
        assert times[i] == pytest.approx(-0.5 * math.log(prev), abs=1e-15)
    assert times[-1] == 0.0 and sampler.T == -0.5 * math.log(ab[0])
    check_score_times(sampler, queries, final_time=0.0)
    # the sampler drew exactly the noise the hand computation drew: none at all when eta = 0
    assert torch.equal(generator.get_state(), hand.get_state())


def test_annealed_langevin_every_step_by_hand():
    T, t_min, L, M, h = 2.0, 0.05, 4, 3, 0.01
    sampler = AnnealedLangevin(T=T, t_min=t_min, n_levels=L, steps_per_level=M, step_size=h)
    states, times, queries, hand, generator = run_2d(sampler)
    levels = [T * (t_min / T) ** (i / (L - 1)) for i in range(L)]
    j = 0
    for t in levels:
        a = h * (1 - math.exp(-2 * t)) / (1 - math.exp(-2 * t_min))
        for _ in range(M):
            x = states[j]
            z = torch.randn(5, 2, generator=hand, dtype=torch.float64)
            close(states[j + 1], x + a * exact(x, t) + math.sqrt(2 * a) * z)
            assert times[j] == pytest.approx(t, rel=1e-13)
            j += 1
    assert j == L * M == sampler.n_steps == len(states) - 1 and times[-1] == t_min
    # each level listed once; its h runs down to the next level, the last down to 0: sum = T
    check_score_times(sampler, queries, final_time=0.0, repeats=M)


def test_pure_functions_match_the_classes_and_keep_dtype():
    x0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    target = GaussianTarget(3, mean=1.0)
    runs = [
        (DDPM(n_steps=30), lambda g: ddpm_ancestral(target.score, x0, alpha_bars=linear_beta_alpha_bars(30),
                                                      generator=g)),
        (DDPM(discretization="exponential", n_steps=20),
         lambda g: ou_exponential_integrator(target.score, x0, times=time_grid(10.0, 1e-3, 20, "geometric"),
                                             generator=g)),
        (DDIM(n_steps=10, eta=0.5), lambda g: ddim(target.score, x0, alpha_bars=DDIM(n_steps=10).alpha_bars,
                                                   eta=0.5, generator=g)),
        (AnnealedLangevin(n_levels=5, steps_per_level=2),
         lambda g: annealed_langevin(target.score, x0, times=AnnealedLangevin(n_levels=5).times.tolist(),
                                     step_sizes=AnnealedLangevin(n_levels=5).step_sizes, steps_per_level=2,
                                     generator=g)),
    ]
    for sampler, pure in runs:
        out = sampler.sample(target.score, x0, generator=torch.Generator().manual_seed(1))
        assert out.dtype == torch.float32 and torch.equal(out, pure(torch.Generator().manual_seed(1)))
        assert sampler.family == "diffusion" and sampler.process == "ou"
        assert sampler.forward_coefficients(0.5) == pytest.approx((math.exp(-0.5), math.sqrt(1 - math.exp(-1))))


def test_default_score_times_cover_the_horizon():
    cases = [(DDPM(), 1000, 0.0), (DDPM(discretization="exponential"), 1000, 1e-3), (DDIM(), 100, 0.0),
             (AnnealedLangevin(), 100, 0.0)]
    for sampler, count, final in cases:
        pairs = sampler.score_times()
        assert len(pairs) == count and min(t for t, _ in pairs) > 0
        assert sum(h for _, h in pairs) == pytest.approx(sampler.T - final, rel=1e-12)
    assert DDPM(discretization="exponential").T == 10.0 and AnnealedLangevin().T == 5.0


@pytest.mark.parametrize("factory, kwargs, name", [
    (DDPM, {"discretization": "euler"}, "discretization"),
    (DDPM, {"n_steps": 0}, "n_steps"),
    (DDPM, {"n_steps": 20}, "n_steps"),  # rescaled beta_max = 1: alpha_bar would hit 0
    (DDPM, {"beta_min": 0.1, "beta_max": 0.01}, "beta_min"),
    (DDPM, {"beta_max": 1.5}, "beta_max"),
    (DDPM, {"discretization": "exponential", "grid": "log"}, "grid"),
    (DDPM, {"discretization": "exponential", "t_min": 20.0}, "t_min"),
    (DDPM, {"discretization": "exponential", "T": -1.0}, "T"),
    (DDIM, {"n_steps": 1001}, "n_steps"),
    (DDIM, {"eta": 1.5}, "eta"),
    (DDIM, {"eta": -0.1}, "eta"),
    (AnnealedLangevin, {"n_levels": 1}, "n_levels"),
    (AnnealedLangevin, {"steps_per_level": 0}, "steps_per_level"),
    (AnnealedLangevin, {"step_size": 0.01}, "step_size"),  # step_size / sigma_L^2 = 5: unstable
    (AnnealedLangevin, {"t_min": 0.0}, "t_min"),
    (AnnealedLangevin, {"T": "5"}, "T"),
])
def test_invalid_parameters_name_the_parameter(factory, kwargs, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        factory(**kwargs)


@pytest.mark.parametrize("kwargs, name, uses", [
    ({"T": 5.0}, "T", "n_steps, beta_min, beta_max"),
    ({"discretization": "ancestral", "t_min": 1e-3}, "t_min", "n_steps, beta_min, beta_max"),
    ({"grid": "uniform"}, "grid", "n_steps, beta_min, beta_max"),
    ({"discretization": "exponential", "beta_max": 0.02}, "beta_max", "n_steps, T, t_min, grid"),
])
def test_ddpm_refuses_a_param_its_discretization_ignores(kwargs, name, uses):
    with pytest.raises(ValueError) as info:
        DDPM(**kwargs)
    message = str(info.value)
    assert message.startswith(f"parameter '{name}' is not used when discretization = ")
    assert f"uses {uses})" in message


def test_ddpm_defaults_of_each_discretization_are_unchanged():
    ancestral, exponential = DDPM(), DDPM(discretization="exponential")
    assert (ancestral.beta_min, ancestral.beta_max) == (1e-4, 0.02)
    assert torch.equal(ancestral.alpha_bars, linear_beta_alpha_bars(1000, 1e-4, 0.02))
    assert (exponential.T, exponential.t_min, exponential.grid) == (10.0, 1e-3, "geometric")
    assert torch.equal(exponential.times, time_grid(10.0, 1e-3, 1000, "geometric"))


def test_every_diffusion_sampler_has_n_steps_the_callback_counts():
    for sampler in (DDPM(n_steps=30), DDPM(discretization="exponential", n_steps=7), DDIM(n_steps=9),
                    AnnealedLangevin(n_levels=4, steps_per_level=3)):
        steps = []
        sampler.sample(GaussianTarget(2).score, torch.zeros(3, 2), generator=torch.Generator().manual_seed(0),
                       callback=lambda k, t, x: steps.append(k))
        assert steps == list(range(1, sampler.n_steps + 1))


def test_schedule_validation_names_the_parameter():
    for call, name in [(lambda: time_grid(1.0, 0.0, 4, "geometric"), "t_min"),
                       (lambda: time_grid(1.0, 0.5, 4, "cubic"), "grid"),
                       (lambda: linear_beta_alpha_bars(10), "n_steps"),
                       (lambda: evenly_spaced_levels(0), "n_steps")]:
        with pytest.raises(ValueError, match=f"'{name}'"):
            call()


def test_registration():
    registered = {}
    for module in (ddpm_module, ddim_module, annealed_module):
        module.register_samplers(lambda name, factory, description="": registered.update({name: factory}))
    assert registered == {"ddpm": DDPM, "ddim": DDIM, "annealed_langevin": AnnealedLangevin}


# ----------------------------------------------------------------------------- exact laws
# Per coordinate, (mu, v) of the output started from N(0, 1), target N(m, s^2); the affine
# coefficients (A, B, C) of each update are read off the updates checked above (module docstring).

def law_ancestral(alpha_bars, m, s):
    ab = [1.0] + [float(a) for a in alpha_bars]
    mu, v = 0.0, 1.0
    for k in range(len(ab) - 1, 0, -1):
        alpha = ab[k] / ab[k - 1]
        beta = 1.0 - alpha
        mt, vt = marginal(m, s, -0.5 * math.log(ab[k]))
        A, B = (1 - beta / vt) / math.sqrt(alpha), beta * mt / (vt * math.sqrt(alpha))
        mu, v = A * mu + B, A * A * v + (beta if k > 1 else 0.0)
    return mu, v


def law_exponential(times, m, s):
    t = [float(x) for x in times]
    mu, v = 0.0, 1.0
    for k in range(len(t) - 1):
        growth = math.expm1(t[k] - t[k + 1])
        mt, vt = marginal(m, s, t[k])
        A, B = 1 + growth - 2 * growth / vt, 2 * growth * mt / vt
        mu, v = A * mu + B, A * A * v + growth * (growth + 2)  # e^{2h} - 1
    return mu, v


def law_ddim(alpha_bars, eta, m, s):
    ab = [1.0] + [float(a) for a in alpha_bars]
    mu, v = 0.0, 1.0
    for i in range(len(ab) - 1, 0, -1):
        now, prev = ab[i], ab[i - 1]
        sigma2 = eta**2 * (1 - prev) / (1 - now) * (1 - now / prev)
        c_x = math.sqrt(prev / now)
        c_s = c_x * (1 - now) - math.sqrt((1 - prev - sigma2) * (1 - now))
        mt, vt = marginal(m, s, -0.5 * math.log(now))
        A, B = c_x - c_s / vt, c_s * mt / vt
        mu, v = A * mu + B, A * A * v + sigma2
    return mu, v


def law_annealed(times, step_sizes, steps_per_level, m, s):
    """M ULA steps with constant (A, B, C) at a level, in closed form: the error to the fixed point
    (mu*, v*) = (B / (1 - A), C^2 / (1 - A^2)) shrinks by A^M (mean) and A^{2M} (variance)."""
    mu, v = 0.0, 1.0
    for t, a in zip(times, step_sizes):
        mt, vt = marginal(m, s, float(t))
        A, B = 1 - a / vt, a * mt / vt
        mu_star, v_star = B / (1 - A), 2 * a / (1 - A * A)
        mu, v = mu_star + A**steps_per_level * (mu - mu_star), v_star + A ** (2 * steps_per_level) * (v - v_star)
    return mu, v


def law_of(sampler, m, s):
    if isinstance(sampler, DDPM) and sampler.discretization == "ancestral":
        return law_ancestral(sampler.alpha_bars, m, s)
    if isinstance(sampler, DDPM):
        return law_exponential(sampler.times, m, s)
    if isinstance(sampler, DDIM):
        return law_ddim(sampler.alpha_bars, sampler.eta, m, s)
    return law_annealed(sampler.times.tolist(), sampler.step_sizes, sampler.steps_per_level, m, s)


def kl_law(mu, v, m, s, d):
    """KL( N(mu 1, v I_d) || N(m 1, s^2 I_d) )."""
    r = v / s**2
    return 0.5 * d * (r - 1 - math.log(r) + (mu - m) ** 2 / s**2)


def w2_law(a, b):
    """W2 per coordinate between N(mu_a, v_a) and N(mu_b, v_b) (multiply by sqrt(d) for the d-dim law)."""
    return math.hypot(a[0] - b[0], math.sqrt(a[1]) - math.sqrt(b[1]))


def test_exact_law_recursions_agree_with_a_direct_loop():
    """The closed-form annealed law against a plain loop over the M steps (the other recursions are loops)."""
    sampler = AnnealedLangevin(n_levels=7, steps_per_level=5)
    mu, v = 0.0, 1.0
    for t, a in zip(sampler.times.tolist(), sampler.step_sizes):
        mt, vt = marginal(3.0, 0.5, t)
        for _ in range(5):
            mu, v = (1 - a / vt) * mu + a * mt / vt, (1 - a / vt) ** 2 * v + 2 * a
    assert law_of(sampler, 3.0, 0.5) == pytest.approx((mu, v), rel=1e-12)


def observed_order(steps, errors):
    """Least-squares slope of log(error) against log(1 / step count)."""
    return -float(np.polyfit(np.log(steps), np.log(errors), 1)[0])


@pytest.mark.parametrize("s", [1.0, 0.5])
def test_order_of_convergence_of_each_discretization(s, capsys):
    """W2 of the exact output law to the law of the continuous-time process it discretizes, target
    N(3 * 1, s^2 I), per coordinate; the observed order is the log-log slope against the step count.

    References: ancestral -> the same schedule with 2^15 levels (the reverse SDE on [0, 5.03]);
    exponential -> p_{t_min} exactly (the reverse SDE from N(0, I) at T = 10 ends at p_{t_min} up to
    the start error, which the reverse contracts to ~e^{-2T}); DDIM -> the 1000-level chain, the finest
    the 1000-level schedule allows (its own error, ~1/1000, bends the fit slightly upwards); annealed
    Langevin -> eps / 1024 with M * 1024 steps per level (the annealed Langevin diffusion with M * eps
    of Langevin time per level), refined with M * eps fixed. Measured (s = 1 / s = 0.5): ancestral
    1.005 / 1.028, exponential geometric 1.023 / 1.016, uniform 1.052 / 1.084, DDIM 1.060 / 1.048,
    annealed 1.006 / 1.006: first order in W2 everywhere (so second order in KL, quadratic in the
    law's error). The annealed reference itself is 0.013 (s = 1) from p_{t_min}: the annealing lag,
    which more steps per level at a smaller eps do not remove (more levels do, see below).
    """
    m = 3.0
    ns = [50, 100, 200, 400, 800]
    results = {}
    ref = law_ancestral(linear_beta_alpha_bars(2**15), m, s)
    results["ddpm ancestral"] = (ns, [w2_law(law_of(DDPM(n_steps=n), m, s), ref) for n in ns])
    for grid in ("geometric", "uniform"):
        ref = marginal(m, s, 1e-3)
        samplers = [DDPM(discretization="exponential", n_steps=n, grid=grid) for n in ns]
        results[f"ddpm exponential {grid}"] = (ns, [w2_law(law_of(sampler, m, s), ref) for sampler in samplers])
    ddim_ns = [10, 20, 40, 80, 160]
    ref = law_of(DDIM(n_steps=1000), m, s)
    results["ddim eta=0"] = (ddim_ns, [w2_law(law_of(DDIM(n_steps=n), m, s), ref) for n in ddim_ns])
    factors = [1, 2, 4, 8, 16]
    ref = law_of(AnnealedLangevin(step_size=2e-3 / 1024, steps_per_level=10 * 1024), m, s)
    refined = [AnnealedLangevin(step_size=2e-3 / f, steps_per_level=10 * f) for f in factors]
    results["annealed_langevin eps/f"] = (factors, [w2_law(law_of(sampler, m, s), ref) for sampler in refined])
    with capsys.disabled():
        print(f"\norder of convergence in W2 per coordinate, target N(3, {s}^2):")
        for name, (steps, errors) in results.items():
            row = ", ".join(f"{n}: {e:.3g}" for n, e in zip(steps, errors))
            print(f"  {name:26s} order {observed_order(steps, errors):.3f}   [{row}]")
    for name, (steps, errors) in results.items():
        assert all(a > b for a, b in zip(errors, errors[1:])), name
        assert 0.9 <= observed_order(steps, errors) <= 1.15, name


# ----------------------------------------------------------------------------- Monte Carlo, defaults

DEFAULTS = {
    "ddpm ancestral": lambda: DDPM(),
    "ddpm exponential": lambda: DDPM(discretization="exponential"),
    "ddim": lambda: DDIM(),
    "annealed_langevin": lambda: AnnealedLangevin(),
}


def expected_fit_kl(mu, v, m, s, d, n):
    """E[gaussian_fit_kl] for n i.i.d. draws of N(mu 1, v I) against N(m 1, s^2 I), exactly.

    With r = v / s^2, Sigma_hat = v W / (n - 1), W ~ Wishart(n - 1, I): E tr = d v, E |mu_hat - m|^2 =
    d (mu - m)^2 + d v / n and E log det(W / (n - 1)) = sum_{i<d} digamma((n - 1 - i) / 2) + d log(2 / (n - 1)),
    so E[KL_fit] = KL_law + (d r / n - E log det(W / (n - 1))) / 2 = KL_law + d(d+3)/(4n) + O(d^3 / n^2).
    """
    i = np.arange(d)
    minus_logdet = -float(digamma((n - 1 - i) / 2).sum()) - d * math.log(2 / (n - 1))
    return kl_law(mu, v, m, s, d) + 0.5 * (d * v / s**2 / n + minus_logdet)


def fit_kl_sd(mu, v, m, s, d, n):
    """Leading-order sd of gaussian_fit_kl. For exact samples the fit's KL is
    |mu_hat - m|^2 / 2 + ||Sigma_hat - I||_F^2 / 4 + ..., a sum of independent terms: d terms
    (1/n) chi2_1 / 2 (variance d / (2 n^2)), d diagonal terms (2/n) chi2_1 / 4 (variance d / (2 n^2)) and
    d(d-1)/2 off-diagonal pairs (2/n) chi2_1 / 4 (variance d(d-1) / (4 n^2)): sd = sqrt(d(d+3)) / (2n),
    scaled by r = v / s^2. (Measured over 2000 fits at d = 20, n = 2000: 0.0053 vs 0.00536; the brief's
    sqrt(d(d+3)/2) / (2n) = 0.0038 is sqrt(2) too small.) A law off by delta in each mean coordinate adds
    the linear term delta . (mu_hat - mu) / s^2, variance d delta^2 v / (n s^4); a variance ratio r != 1 adds
    (r - 1) tr(Sigma_hat / v - I) / 2, variance d (r - 1)^2 / (2 n)."""
    r, delta = v / s**2, mu - m
    return math.sqrt(d * (d + 3) * r * r / (4 * n * n) + d * delta**2 * r / (n * s**2) + d * (r - 1) ** 2 / (2 * n))


@pytest.mark.parametrize("d", [20, 50])
@pytest.mark.parametrize("mean", [3.0, 0.0])
@pytest.mark.parametrize("name", list(DEFAULTS))
def test_defaults_with_exact_scores_reach_the_target(name, mean, d, one_thread, capsys):
    """float32 (the suites' dtype), x0 ~ N(0, I), the target's exact score.

    n: 2000 particles at d = 20, 4000 at d = 50 (sd of the fit's KL 0.0054 and 0.0064), 20000 for DDIM
    (100 steps, cheap, and its exact-law KL is the largest: 0.026 at d = 50). Two checks:
    (a) the sample agrees with the exact law: |KL_fit - E[KL_fit | law]| < 5 sd (5 sigma: a two-sided
        false alarm of 6e-7);
    (b) the acceptance bound KL_fit - d(d+3)/(4n) < 0.05. It holds with a 5 sd margin whenever
        KL_law + (E - KL_law - d(d+3)/(4n)) + 5 sd < 0.05, asserted first so (b) is a test of the law.
    Exact-law KL at d = 50, mean 3: ancestral 4.9e-7, exponential 4.9e-4 (t_min = 1e-3 early stopping),
    DDIM 0.026 (the first-order error of 100 steps, see the order test), annealed Langevin 0.0063
    (annealing lag); mean 0: 1.3e-7, 2.7e-4, 0.017, 1.2e-4.
    """
    n = 20_000 if name == "ddim" else {20: 2000, 50: 4000}[d]
    sampler = DEFAULTS[name]()
    target = GaussianTarget(dim=d, mean=mean)
    mu, v = law_of(sampler, mean, 1.0)
    law_kl = kl_law(mu, v, mean, 1.0, d)
    expected = expected_fit_kl(mu, v, mean, 1.0, d, n)
    sd = fit_kl_sd(mu, v, mean, 1.0, d, n)
    bias = d * (d + 3) / (4 * n)
    assert expected - bias + 5 * sd < 0.05, "n too small to test the 0.05 bound at 5 sigma"

    x0 = torch.randn(n, d, generator=torch.Generator().manual_seed(100 + d), dtype=torch.float32)
    x0_copy = x0.clone()
    out = sampler.sample(target.score, x0, generator=torch.Generator().manual_seed(200 + d))
    assert out.dtype == torch.float32 and out.shape == (n, d) and torch.equal(x0, x0_copy)
    kl = gaussian_fit_kl(out, target.mean, target.cov)
    with capsys.disabled():
        print(f"\n{name:18s} d={d} mean={mean} n={n}: KL_fit {kl:.4f}, bias {bias:.4f}, KL_fit - bias "
              f"{kl - bias:+.4f}, exact-law KL {law_kl:.2e}, E[KL_fit] {expected:.4f}, "
              f"z = {(kl - expected) / sd:+.2f}")
    assert abs(kl - expected) < 5 * sd, f"KL_fit {kl:.4f} vs exact-law expectation {expected:.4f} (sd {sd:.4f})"
    assert kl - bias < 0.05


def test_annealed_langevin_error_is_the_annealing_lag():
    """Exact law, d = 50, target N(3 * 1, I): the error of the default annealed Langevin falls with
    the number of levels (the lag of the chain behind p_t's moving mean), not with the step size.
    Measured KL for n_levels = 25, 50, 100, 200, 400: 0.078, 0.021, 0.0063, 0.0022, 0.00098."""
    kls = [kl_law(*law_of(AnnealedLangevin(n_levels=L), 3.0, 1.0), 3.0, 1.0, 50) for L in (25, 50, 100, 200, 400)]
    assert all(a > b for a, b in zip(kls, kls[1:]))
    assert kls[2] == pytest.approx(0.0063, abs=1e-4) and kls[0] > 10 * kls[2] > 10 * 5 * kls[4]
    # smaller steps at the same levels make it worse (less Langevin time per level): step_size = 1e-3, 5e-4
    assert [round(kl_law(*law_of(AnnealedLangevin(step_size=h), 3.0, 1.0), 3.0, 1.0, 50), 3) for h in (1e-3, 5e-4)] \
        == [0.020, 0.074]
