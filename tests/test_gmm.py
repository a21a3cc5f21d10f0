"""GMMTarget (plugins/targets/gmm.py): parameters, exact samples, OU-marginal density, score, posteriors.

The target is pi = sum_j w_j N(m_j, s_j^2 I_d); its forward OU marginal p_t is the mixture with
the same weights, means e^{-t} m_j and variances v_j(t) = e^{-2t} s_j^2 + 1 - e^{-2t}
(docs/architecture.md, Time and seeds). Reference values are computed here independently of the
module's code (scipy densities, autograd, closed-form moments written out below).

Moment tolerances (5 sigma, sigma computed from the closed form). For a mixture with component
means mu_j and isotropic variances v_j in dimension d:
  per coordinate: E x_i = sum_j w_j mu_ji,  Var x_i = sum_j w_j (v_j + mu_ji^2) - (E x_i)^2,
  ||x||^2 given j is v_j * noncentral chi^2_d(||mu_j||^2 / v_j): mean A_j = ||mu_j||^2 + d v_j,
  variance B_j = 2 d v_j^2 + 4 v_j ||mu_j||^2, so E||x||^2 = sum_j w_j A_j and
  Var ||x||^2 = sum_j w_j (B_j + A_j^2) - (E||x||^2)^2.
A sample mean of n i.i.d. draws has sd sqrt(Var / n); we accept |error| < 5 sd (two-sided
probability 5.7e-7 per check, fixed seeds).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm

from bench_plugins.targets import gmm
from bench_plugins.targets.gaussian import GaussianTarget
from bench_plugins.targets.gmm import GMMTarget, mixture_log_prob, mixture_posterior, mixture_score

F64 = torch.float64
TIMES = [0.0, 0.1, 1.0, 5.0]
# unequal weights (normalized from [1, 2, 1]), vector and scalar means, one std per component
CUSTOM = dict(dim=3, weights=[1.0, 2.0, 1.0], means=[[1.0, 0.0, -1.0], 2.0, [0.0, 0.0, 5.0]],
              std=[0.5, 1.0, 2.0])
CUSTOM_W = np.array([0.25, 0.5, 0.25])
CUSTOM_M = np.array([[1.0, 0.0, -1.0], [2.0, 2.0, 2.0], [0.0, 0.0, 5.0]])
CUSTOM_S = np.array([0.5, 1.0, 2.0])
# overlapping modes: posteriors are genuinely soft, the Bayes accuracy is far from 1
OVERLAP = dict(dim=2, weights=[0.5, 0.3, 0.2], means=[[-1.0, 0.0], [0.5, 0.5], [1.0, -1.0]],
               std=[1.0, 0.7, 1.2])

pytestmark = pytest.mark.usefixtures("one_thread")


def mixture_moments(w, mu, var):
    """(E x [d], Var x_i [d], E||x||^2, Var||x||^2) of sum_j w_j N(mu_j, var_j I) (formulas above)."""
    w, mu, var = np.asarray(w), np.asarray(mu), np.asarray(var)
    d = mu.shape[1]
    mean = w @ mu
    coord_var = w @ (var[:, None] + mu**2) - mean**2
    norm2 = (mu**2).sum(1)
    a = norm2 + d * var
    b = 2 * d * var**2 + 4 * var * norm2
    m2 = float(w @ a)
    return mean, coord_var, m2, float(w @ (b + a**2)) - m2**2


def scipy_log_prob(x, w, mu, s, t):
    """log p_t(x) as a logsumexp of scipy multivariate normal log densities."""
    decay = math.exp(-t)
    var = decay**2 * s**2 + 1 - decay**2
    d = mu.shape[1]
    parts = [math.log(w[j]) + multivariate_normal(decay * mu[j], var[j] * np.eye(d)).logpdf(x)
             for j in range(len(w))]
    return logsumexp(np.stack(parts), axis=0)


# ---------------------------------------------------------------- parameters

def test_parameters_are_parsed_normalized_and_float64():
    target = GMMTarget(**CUSTOM)
    assert target.dim == 3 and target.n_components == 3
    for tensor in (target.weights, target.means, target.stds):
        assert tensor.dtype == F64
    assert target.weights.tolist() == CUSTOM_W.tolist()
    assert target.means.tolist() == CUSTOM_M.tolist()
    assert target.stds.tolist() == CUSTOM_S.tolist()
    assert GMMTarget(2, weights=[1.0, 1.0], means=[0.0, 1.0], std=0.3).stds.tolist() == [0.3, 0.3]
    assert "GMMTarget(dim=3, K=3" in repr(target)


def test_default_target_is_the_documented_well_separated_mixture():
    """d = 10, w = (0.5, 0.3, 0.2), means (-3, 0, 3) * ones(10), std 1: consecutive means are
    3 sqrt(10) = 9.49 apart. The Bayes classifier only sees y = <x, 1>/sqrt(d) (unit variance,
    means -a, 0, a); its misassignment probability, from the two thresholds, is 1.33e-6, the
    number the docstring states. E||x||^2 = 0.5 (90 + 10) + 0.3 (0 + 10) + 0.2 (90 + 10) = 73."""
    target = GMMTarget()
    assert target.dim == 10 and target.weights.tolist() == [0.5, 0.3, 0.2]
    assert torch.equal(target.means, torch.tensor([-3.0, 0.0, 3.0], dtype=F64)[:, None].expand(3, 10))
    assert target.stds.tolist() == [1.0, 1.0, 1.0]
    a = 3 * math.sqrt(10)
    assert float((target.means[1] - target.means[0]).norm()) == pytest.approx(a)
    b01 = math.log(0.5 / 0.3) / a - a / 2  # choose 0 over 1 below b01
    b12 = a / 2 - math.log(0.2 / 0.3) / a  # choose 2 over 1 above b12
    err = 0.5 * norm.sf(b01 + a) + 0.3 * (norm.cdf(b01) + norm.sf(b12)) + 0.2 * norm.cdf(b12 - a)
    assert err == pytest.approx(1.327e-6, rel=1e-3)
    assert "1.33e-6" in GMMTarget.__doc__ and "9.49" in GMMTarget.__doc__ and "4.74" in GMMTarget.__doc__
    assert target.second_moment() == pytest.approx(73.0, rel=1e-14)


@pytest.mark.parametrize("kwargs, name", [
    (dict(dim=0), "dim"),
    (dict(dim=2.5), "dim"),
    (dict(weights=[0.5, -0.3, 0.8]), "weights"),          # negative weight
    (dict(weights=[0.5, 0.0, 0.5]), "weights"),           # zero weight
    (dict(weights=[]), "weights"),
    (dict(weights=0.5), "weights"),
    (dict(weights=[0.5, "a", 0.5]), "weights"),
    (dict(weights=[0.5, float("nan"), 0.5]), "weights"),
    (dict(means=[-3.0, 3.0]), "means"),                   # 2 means for 3 weights
    (dict(means=1.0), "means"),
    (dict(dim=3, means=[0.0, [1.0, 2.0], 0.0]), "means"),  # mean vector of length 2 in d = 3
    (dict(dim=3, means=[0.0, [1.0, True, 2.0], 0.0]), "means"),
    (dict(std=[1.0, 1.0]), "std"),                        # 2 stds for 3 weights
    (dict(std=-1.0), "std"),                              # negative
    (dict(std=[1.0, -0.5, 1.0]), "std"),
    (dict(std=0.0), "std"),
    (dict(std=[1.0, float("inf"), 1.0]), "std"),
])
def test_invalid_parameters_raise_value_error_naming_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=f"'{name}"):
        GMMTarget(**kwargs)


def test_length_mismatch_says_which_list_disagrees():
    with pytest.raises(ValueError, match=r"'means' has 2 entries but 'weights' has 3"):
        GMMTarget(means=[0.0, 1.0])
    with pytest.raises(ValueError, match=r"'std' has 4 entries but 'weights' has 3"):
        GMMTarget(std=[1.0, 1.0, 1.0, 1.0])


def test_mixture_components_match_the_gaussian_target_interface():
    target = GMMTarget(**CUSTOM)
    w, m, v = target.mixture_components()
    gw, gm, gv = GaussianTarget(3).mixture_components()
    for ours, theirs in ((w, gw), (m, gm), (v, gv)):
        assert ours.dtype == theirs.dtype == F64 and ours.dim() == theirs.dim()
    assert w.tolist() == CUSTOM_W.tolist() and m.tolist() == CUSTOM_M.tolist()
    assert v.tolist() == np.repeat(CUSTOM_S[:, None] ** 2, 3, axis=1).tolist()
    v[0, 0] = 99.0  # a copy: the caller cannot corrupt the target
    assert target.stds[0] == 0.5


# ---------------------------------------------------------------- samples

def test_samples_have_the_closed_form_moments_and_label_frequencies(float64):
    n = 200_000
    target = GMMTarget(**CUSTOM)
    x, labels = target.sample_with_labels(n, torch.Generator().manual_seed(0))
    assert x.shape == (n, 3) and x.dtype == F64 and labels.dtype == torch.long
    mean, coord_var, m2, m2_var = mixture_moments(CUSTOM_W, CUSTOM_M, CUSTOM_S**2)
    assert m2 == pytest.approx(target.second_moment(), rel=1e-14)
    err = np.abs(x.mean(0).numpy() - mean)
    print(f"gmm sample mean error / sd: {err / np.sqrt(coord_var / n)}")
    assert (err < 5 * np.sqrt(coord_var / n)).all()
    assert abs(float(x.pow(2).sum(-1).mean()) - m2) < 5 * math.sqrt(m2_var / n)
    # label counts are Bin(n, w_j): sd sqrt(w_j (1 - w_j) / n)
    freq = torch.bincount(labels, minlength=3).double().numpy() / n
    assert (np.abs(freq - CUSTOM_W) < 5 * np.sqrt(CUSTOM_W * (1 - CUSTOM_W) / n)).all()
    # conditionally on the label, the draw is N(m_j, s_j^2 I): per-component mean within 5 sd
    for j in range(3):
        xj = x[labels == j]
        assert (np.abs(xj.mean(0).numpy() - CUSTOM_M[j]) < 5 * CUSTOM_S[j] / math.sqrt(len(xj))).all()


def test_default_target_sample_moments(float64):
    """Default: E x_i = 0.5 (-3) + 0.2 (3) = -0.9, Var x_i = 7.3 - 0.81 = 6.49, E||x||^2 = 73."""
    n = 100_000
    x = GMMTarget().sample(n, torch.Generator().manual_seed(1))
    mean, coord_var, m2, m2_var = mixture_moments([0.5, 0.3, 0.2], np.array([[-3.0], [0.0], [3.0]]) * np.ones(10),
                                                  np.ones(3))
    assert mean[0] == pytest.approx(-0.9) and coord_var[0] == pytest.approx(6.49) and m2 == pytest.approx(73.0)
    assert (np.abs(x.mean(0).numpy() - mean) < 5 * np.sqrt(coord_var / n)).all()
    assert abs(float(x.pow(2).sum(-1).mean()) - m2) < 5 * math.sqrt(m2_var / n)


def test_sample_dtype_device_and_determinism():
    target = GMMTarget(**CUSTOM)
    x = target.sample(50, torch.Generator().manual_seed(3))
    assert x.dtype == torch.get_default_dtype() == torch.float32 and x.device.type == "cpu"
    again, labels = target.sample_with_labels(50, torch.Generator().manual_seed(3))
    assert torch.equal(x, again)
    assert target.sample(0, torch.Generator()).shape == (0, 3)
    state = torch.random.get_rng_state()
    target.sample(10, torch.Generator().manual_seed(4))
    assert torch.equal(torch.random.get_rng_state(), state)  # only the given generator is used


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_sample_and_density_on_cuda():
    target = GMMTarget()
    x = target.sample(1000, torch.Generator(device="cuda").manual_seed(0))
    assert x.device.type == "cuda"
    for out in (target.log_prob(x, 0.3), target.score(x, 0.3), target.component_posterior(x)):
        assert out.device.type == "cuda" and torch.isfinite(out).all()
    assert torch.allclose(target.log_prob(x, 0.3).cpu(), target.log_prob(x.cpu(), 0.3), rtol=1e-5)


# ---------------------------------------------------------------- density and score

@pytest.mark.parametrize("t", TIMES)
def test_log_prob_integrates_to_one_in_d1_and_d2(t):
    """Trapezoid rule on a wide fine grid (h / sigma_min <= 0.1 and +-30 sigma_max of range):
    for smooth Gaussians its error is ~exp(-2 pi^2 sigma^2 / h^2), far below the 1e-9 asked."""
    one = GMMTarget(1, weights=[0.5, 0.3, 0.2], means=[-3.0, 0.0, 3.0], std=[0.5, 1.0, 2.0])
    grid = torch.linspace(-70.0, 70.0, 140_001, dtype=F64)[:, None]  # h = 0.001
    mass = torch.trapezoid(one.log_prob(grid, t).exp(), dx=0.001)
    assert float(mass) == pytest.approx(1.0, abs=1e-9)

    two = GMMTarget(2, weights=[0.6, 0.4], means=[[-2.0, 1.0], 3.0], std=[0.5, 1.5])
    h = 0.05
    axis = torch.arange(-45.0, 45.0 + h / 2, h, dtype=F64)
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    dens = two.log_prob(torch.stack([xx.flatten(), yy.flatten()], -1), t).exp().reshape(xx.shape)
    mass = torch.trapezoid(torch.trapezoid(dens, dx=h, dim=1), dx=h)
    assert float(mass) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("t", TIMES)
def test_log_prob_matches_scipy(t):
    target = GMMTarget(**CUSTOM)
    gen = torch.Generator().manual_seed(5)
    x = torch.cat([torch.randn(200, 3, generator=gen, dtype=F64) * 3,
                   torch.randn(20, 3, generator=gen, dtype=F64) * 30])  # far tails too
    ours = target.log_prob(x, t)
    assert ours.shape == (220,) and ours.dtype == F64
    ref = scipy_log_prob(x.numpy(), CUSTOM_W, CUSTOM_M, CUSTOM_S, t)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("t", TIMES)
def test_score_is_the_gradient_of_log_prob(t):
    target = GMMTarget(**CUSTOM)
    gen = torch.Generator().manual_seed(6)
    x = torch.cat([torch.randn(200, 3, generator=gen, dtype=F64) * 3,
                   torch.randn(20, 3, generator=gen, dtype=F64) * 50]).requires_grad_(True)
    (grad,) = torch.autograd.grad(target.log_prob(x, t).sum(), x)
    score = target.score(x.detach(), t)
    assert score.shape == (220, 3) and score.dtype == F64
    torch.testing.assert_close(score, grad, rtol=1e-10, atol=1e-10)


def test_far_points_stay_finite_and_float32_is_kept():
    """Points 1000 standard deviations out: every component density underflows, logsumexp does not."""
    target = GMMTarget()
    x = torch.full((4, 10), 1000.0)
    x[1] *= -1
    for out in (target.log_prob(x), target.score(x), target.component_posterior(x)):
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert target.component_posterior(x)[0].tolist() == [0.0, 0.0, 1.0]
    assert target.component_posterior(x)[1].tolist() == [1.0, 0.0, 0.0]
    torch.testing.assert_close(target.score(x)[0], 3.0 - x[0])  # only mode 2 matters out there


def test_one_component_reduces_to_the_gaussian_target():
    mean, std = [1.0, -2.0, 0.5], 1.7
    ours, ref = GMMTarget(3, weights=[1.0], means=[mean], std=std), GaussianTarget(3, mean=mean, std=std)
    x = torch.randn(30, 3, generator=torch.Generator().manual_seed(7), dtype=F64)
    for t in TIMES:
        torch.testing.assert_close(ours.log_prob(x, t), ref.log_prob(x, t), rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(ours.score(x, t), ref.score(x, t), rtol=1e-13, atol=1e-13)
        means_t, vars_t = ours.marginal(t)
        ref_mean, ref_var = ref.marginal(t)
        torch.testing.assert_close(means_t[0], ref_mean)
        torch.testing.assert_close(vars_t.expand(3), ref_var)


def test_module_functions_are_what_the_class_uses():
    target = GMMTarget(**CUSTOM)
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(8), dtype=F64)
    means_t, vars_t = target.marginal(0.7)
    args = (x, target.weights.log(), means_t, vars_t)
    assert torch.equal(mixture_log_prob(*args), target.log_prob(x, 0.7))
    assert torch.equal(mixture_score(*args), target.score(x, 0.7))
    assert torch.equal(mixture_posterior(*args), target.component_posterior(x, 0.7))


# ---------------------------------------------------------------- OU marginals

@pytest.mark.parametrize("t", [0.1, 1.0])
def test_forward_noised_samples_have_the_marginal_moments(float64, t):
    """x_t = e^{-t} x_0 + sqrt(1 - e^{-2t}) z with x_0 ~ pi has the moments of the mixture
    (e^{-t} m_j, e^{-2t} s_j^2 + 1 - e^{-2t}) written out here, which marginal(t) returns."""
    n = 200_000
    target = GMMTarget(**CUSTOM)
    gen = torch.Generator().manual_seed(9)
    x0 = target.sample(n, gen)
    decay = math.exp(-t)
    xt = decay * x0 + math.sqrt(1 - decay**2) * torch.randn(n, 3, generator=gen, dtype=F64)
    mu_t, var_t = decay * CUSTOM_M, decay**2 * CUSTOM_S**2 + 1 - decay**2
    means_t, vars_t = target.marginal(t)
    np.testing.assert_allclose(means_t.numpy(), mu_t, rtol=1e-15)
    np.testing.assert_allclose(vars_t.numpy(), var_t, rtol=1e-14)
    mean, coord_var, m2, m2_var = mixture_moments(CUSTOM_W, mu_t, var_t)
    assert (np.abs(xt.mean(0).numpy() - mean) < 5 * np.sqrt(coord_var / n)).all()
    assert abs(float(xt.pow(2).sum(-1).mean()) - m2) < 5 * math.sqrt(m2_var / n)
    # per-coordinate variance: the sample variance has sd sqrt((mu4 - sigma^4) / n) to leading
    # order, with the 4th central moment of the 1-D mixture about its mean c:
    # mu4 = sum_j w_j ((mu_ji - c)^4 + 6 (mu_ji - c)^2 v_j + 3 v_j^2)
    dev = mu_t - mean
    mu4 = CUSTOM_W @ (dev**4 + 6 * dev**2 * var_t[:, None] + 3 * var_t[:, None] ** 2)
    var_err = np.abs(xt.var(0).numpy() - coord_var)
    assert (var_err < 5 * np.sqrt((mu4 - coord_var**2) / n)).all()


# ---------------------------------------------------------------- component posterior

def test_posterior_recovers_the_labels_of_the_default_target(float64):
    """Bayes error 1.33e-6: expected misassignments in 100 000 draws 0.13; we ask >= 99.9%."""
    n = 100_000
    target = GMMTarget()
    x, labels = target.sample_with_labels(n, torch.Generator().manual_seed(10))
    post = target.component_posterior(x)
    assert post.shape == (n, 3)
    torch.testing.assert_close(post.sum(-1), torch.ones(n, dtype=F64), rtol=0, atol=1e-12)
    accuracy = float((post.argmax(-1) == labels).double().mean())
    print(f"gmm default posterior accuracy: {accuracy:.6f}")
    assert accuracy >= 0.999


@pytest.mark.parametrize("t", [0.0, 0.5])
def test_posterior_is_calibrated_on_overlapping_modes(float64, t):
    """Given x, the true label is Categorical(post(x)). So D_i = 1{argmax post(x_i) = label_i}
    - max_j post_j(x_i) has mean 0 and variance E[m (1 - m)] (m = max post), and likewise
    1{label_i = j} - post_j(x_i) with variance E[post_j (1 - post_j)]: the sample means are
    within 5 sd of 0. At t > 0 the label of x_0 is the component of x_t in the mixture p_t,
    which checks the posterior of the marginal."""
    n = 100_000
    target = GMMTarget(**OVERLAP)
    gen = torch.Generator().manual_seed(11)
    x0, labels = target.sample_with_labels(n, gen)
    decay = math.exp(-t)
    x = decay * x0 + math.sqrt(1 - decay**2) * torch.randn(n, 2, generator=gen, dtype=F64)
    post = target.component_posterior(x, t)
    torch.testing.assert_close(post.sum(-1), torch.ones(n, dtype=F64), rtol=0, atol=1e-12)
    top, guess = post.max(-1)
    correct = (guess == labels).double()
    accuracy, expected = float(correct.mean()), float(top.mean())
    sd = math.sqrt(float((top * (1 - top)).mean()) / n)
    print(f"gmm overlap t={t}: accuracy {accuracy:.4f}, E max post {expected:.4f}, sd {sd:.5f}")
    assert 0.6 < expected < 0.95  # genuinely soft
    assert abs(accuracy - expected) < 5 * sd
    onehot = torch.nn.functional.one_hot(labels, 3).double()
    per_class_sd = (post * (1 - post)).mean(0).div(n).sqrt()
    assert ((onehot - post).mean(0).abs() < 5 * per_class_sd).all()


@pytest.mark.parametrize("params", [{}, CUSTOM], ids=["default", "custom"])
def test_passes_the_plugin_authors_target_check(params):
    """bench_core.kit.checks.check_target: shapes, dtypes (float32 and float64), determinism,
    score == autograd of log_prob."""
    from bench_core.kit import check_target

    check_target(GMMTarget(**params))


def test_gmm_registers_through_the_plugin_hook():
    from bench_core.components.discovery import BUILTIN_MODULES, build_registry

    extra = [] if gmm.__name__ in BUILTIN_MODULES else [gmm]
    registry = build_registry(extra=extra, entry_points=False)
    assert "gmm" in registry.names("targets")
    assert registry.get("targets", "gmm").factory is GMMTarget
