"""Certified lower bounds on total variation (PAPER, "what a fair contrast measures").

Two metrics (the score errors they are read against are in :mod:`score_error`; the mode-based
bound for mixtures is in :mod:`mode_metrics`):

- ``tv_witness``: a one-sided lower confidence bound on ``TV(law of the samples, pi)``
  from the witness region ``A`` exposed by the score estimate (``score.region``).
- ``tv_classifier``: a one-sided lower confidence bound on the same TV from the held-out
  accuracy of a small MLP trained to tell samples from reference samples.

Both treat the produced particles as i.i.d. draws from their law (independent chains),
which is what the confidence statements need. Randomness comes only from ``ctx.generator``.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch
from scipy.stats import beta as beta_dist
from torch import Tensor

from bench_core import (MetricContext, SkipMetric, did_you_mean, get_registry, hookimpl, open_interval_float,
                        positive_float, positive_int, tensor_size)

from .score_error import SAMPLE_CHUNK, draw_target, optional_method

F64 = torch.float64


# ---------------------------------------------------------------- parameter checks and helpers

def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """Exact one-sided Clopper-Pearson lower bound of a binomial proportion at level ``alpha``.

    ``L = Beta^{-1}(alpha; k, n - k + 1)`` (0 when k = 0): for every true p,
    ``P_p(L(K) > p) <= alpha`` with ``K ~ Bin(n, p)``.
    """
    if n <= 0:
        return 0.0
    if k <= 0:
        return 0.0
    return float(beta_dist.ppf(alpha, k, n - k + 1))


def clopper_pearson_upper(k: int, n: int, alpha: float) -> float:
    """Exact one-sided Clopper-Pearson upper bound: ``U = Beta^{-1}(1 - alpha; k + 1, n - k)``
    (1 when k = n); ``P_p(U(K) < p) <= alpha``."""
    if n <= 0:
        return 1.0
    if k >= n:
        return 1.0
    return float(beta_dist.ppf(1.0 - alpha, k + 1, n - k))


def _count_in_region(region: Callable[[Tensor], Tensor], x: Tensor) -> int:
    """Number of rows of ``x`` in the witness set, evaluated in chunks."""
    total = 0
    for chunk in torch.split(x, SAMPLE_CHUNK):
        inside = torch.as_tensor(region(chunk))
        if inside.shape != (chunk.shape[0],):
            raise ValueError(f"score.region returned shape {tuple(inside.shape)}, expected ({chunk.shape[0]},)")
        total += int(inside.to(torch.bool).sum())
    return total


# ---------------------------------------------------------------- tv_witness

class TVWitness:
    r"""Certified lower bound on TV(law of the samples, pi) from the witness region ``A``.

    For any measurable A, :math:`\mathrm{TV}(P, \pi) = \sup_B |P(B) - \pi(B)| \ge |P(A) - \pi(A)|`.
    ``A`` is ``score.region`` (where the estimate is deliberately wrong). With ``k`` of the ``n``
    samples in A, :math:`\hat p = k/n`; ``q = pi(A)`` is ``exp(score.region_log_mass(target))``
    when available (closed form), else :math:`\hat q = k_q / m` from ``m = n_mc`` fresh target
    samples drawn with ``ctx.generator``. ``alpha = 1 - confidence``; ``L_a(k, n)`` and
    ``U_a(k, n)`` are the exact one-sided Clopper-Pearson bounds at level ``a``
    (``P(L > p) <= a``, ``P(U < p) <= a``; scipy.stats.beta.ppf).

    Closed-form q:
        ``lower = max(L_{alpha/2}(k, n) - q,  q - U_{alpha/2}(k, n),  0)``.
        On the event {L <= P(A) <= U}, whose complement has probability <= alpha/2 + alpha/2
        (union bound over the two directions), both terms are <= |P(A) - q| <= TV.
    Estimated q:
        ``lower = max(L_{alpha/4}(k, n) - U_{alpha/4}(k_q, m),  L_{alpha/4}(k_q, m) - U_{alpha/4}(k, n),  0)``.
        The four one-sided bounds (p lower/upper, q lower/upper) each fail with probability
        <= alpha/4; on the event that none fails (probability >= 1 - alpha by the union bound)
        both terms are <= |P(A) - pi(A)| <= TV.

    So ``P(lower <= TV) >= confidence``; ``lower`` is 0 (not negative) when nothing is certified.

    Keys
    ----
    estimate : float
        :math:`\hat p - q` (q or :math:`\hat q`), signed.
    lower : float
        The certified lower bound above.
    p_samples : float
        :math:`\hat p`, the fraction of samples in A.
    p_target : float
        q (closed form) or :math:`\hat q`.

    Parameters
    ----------
    confidence : float, default 0.95
        The one-sided coverage of ``lower``.
    n_mc : int, default 100000
        Monte Carlo size: fresh target samples estimating pi(A) when it has no closed form.
        Unused when the region's mass is known in closed form.
    witness : str, optional
        Take A from this registered score estimate (built on the cell's target and data with
        ``witness_params``) instead of the cell's own estimate. This puts every cell of a
        comparison, the exact score included, on the same witness set.
    witness_params : dict, optional
        Parameters of the ``witness`` estimate.

    Raises SkipMetric when the score estimate has no ``region``.
    """

    #: needs exact target draws for the witness set's mass: on a data set, `bench check` names this instead
    closed_form_only = "tv_classifier (a certified TV lower bound from samples alone)"

    higher_is_better = True
    keys = ("estimate", "lower", "p_samples", "p_target")  # returned by __call__ (checked by bench check)
    #: old param names, answered by `bench check` with the new one
    renamed = {"n_mass": "n_mc"}

    def __init__(self, confidence: float = 0.95, n_mc: int = 100_000, witness: Optional[str] = None,
                 witness_params: Optional[dict] = None) -> None:
        self.confidence = open_interval_float("confidence", confidence, 0.0, 1.0)
        self.n_mc = tensor_size("n_mc", n_mc, what="the fresh target draws")
        if witness is not None:
            known = get_registry().names("scores")
            if witness not in known:
                raise ValueError(f"parameter 'witness': unknown score '{witness}'{did_you_mean(witness, known)}; "
                                 f"known: {', '.join(known)}")
        if witness_params is not None:
            if witness is None:
                raise ValueError("parameter 'witness_params' is not used without witness (the region is then the "
                                 "cell's own estimate's); set witness to a score, or remove it")
            if not isinstance(witness_params, dict):
                raise ValueError(f"parameter 'witness_params' must be a table of the witness score's params, "
                                 f"got {witness_params!r}")
            try:  # their names and types now, not in every cell
                get_registry().check_params("scores", witness, witness_params, n_positional=2)
            except ValueError as exc:
                raise ValueError(f"parameter 'witness_params': {exc}") from None
        self.witness, self.witness_params = witness, dict(witness_params or {})
        self._witness: Optional[tuple[Any, Any, Any]] = None  # (target, data, estimate), per cell

    def _region_owner(self, ctx: MetricContext) -> Any:
        """The estimate whose region is the witness set: the cell's, or the named witness."""
        if self.witness is None:
            return ctx.score
        if self._witness is None or self._witness[0] is not ctx.target or self._witness[1] is not ctx.data:
            estimate = get_registry().create("scores", self.witness, ctx.target, ctx.data, **self.witness_params)
            self._witness = (ctx.target, ctx.data, estimate)
        return self._witness[2]

    def __call__(self, samples: Tensor, ctx: MetricContext) -> dict[str, float]:
        owner = self._region_owner(ctx)
        region = optional_method(owner, "region")
        if region is None:
            raise SkipMetric(f"tv_witness needs a score estimate with a witness region (a region(x) "
                             f"method); {type(owner).__name__} has none (set the metric's 'witness' param to "
                             "compare on another estimate's region)")
        n = samples.shape[0]
        if n == 0:
            raise SkipMetric("tv_witness needs at least one sample")
        k = _count_in_region(region, samples)
        p_hat = k / n
        alpha = 1.0 - self.confidence
        log_mass_fn = optional_method(owner, "region_log_mass")
        log_mass = log_mass_fn(ctx.target) if log_mass_fn is not None else None
        if log_mass is not None:
            q = math.exp(float(log_mass))
            lo_p = clopper_pearson_lower(k, n, alpha / 2)
            up_p = clopper_pearson_upper(k, n, alpha / 2)
            lower = max(lo_p - q, q - up_p, 0.0)
        else:
            m = self.n_mc
            kq = _count_in_region(region, draw_target(ctx, m))
            q = kq / m
            a4 = alpha / 4
            lower = max(clopper_pearson_lower(k, n, a4) - clopper_pearson_upper(kq, m, a4),
                        clopper_pearson_lower(kq, m, a4) - clopper_pearson_upper(k, n, a4), 0.0)
        return {"estimate": p_hat - q, "lower": lower, "p_samples": p_hat, "p_target": q}


# ---------------------------------------------------------------- tv_classifier

def _init_linear(fan_in: int, fan_out: int, gen: torch.Generator, device: torch.device,
                 dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """PyTorch's default nn.Linear initialization, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight
    and bias, drawn from ``gen`` (never from the global RNG)."""
    bound = 1.0 / math.sqrt(fan_in)
    w = (torch.rand(fan_out, fan_in, generator=gen, device=gen.device, dtype=dtype) * 2 - 1) * bound
    b = (torch.rand(fan_out, generator=gen, device=gen.device, dtype=dtype) * 2 - 1) * bound
    return w.to(device), b.to(device)


def _mlp(d: int, width: int, gen: torch.Generator, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    # nn.Linear's default initialization draws from the global RNG: fork it so the caller's
    # global stream is left untouched (the weights are then overwritten from ``gen``).
    with torch.random.fork_rng(devices=[]):
        model = torch.nn.Sequential(
            torch.nn.Linear(d, width), torch.nn.ReLU(),
            torch.nn.Linear(width, width), torch.nn.ReLU(),
            torch.nn.Linear(width, 1)).to(device=device, dtype=dtype)
    with torch.no_grad():
        for layer in (model[0], model[2], model[4]):
            w, b = _init_linear(layer.in_features, layer.out_features, gen, device, dtype)
            layer.weight.copy_(w)
            layer.bias.copy_(b)
    return model


def _train_adam(model: torch.nn.Module, x: Tensor, y: Tensor, *, epochs: int, lr: float,
                betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
    """Full-batch Adam (Kingma & Ba, torch.optim.Adam's defaults) on the logistic loss.

    Written out (a few lines) rather than torch.optim.Adam, whose first step in a process
    spends ~2 s importing the compiler stack: the metric must run in < 3 s cold.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    m1 = [torch.zeros_like(p) for p in params]
    m2 = [torch.zeros_like(p) for p in params]
    b1, b2 = betas
    loss_fn = torch.nn.BCEWithLogitsLoss()
    with torch.enable_grad():
        for step in range(1, epochs + 1):
            grads = torch.autograd.grad(loss_fn(model(x).squeeze(-1), y), params)
            with torch.no_grad():
                c1, c2 = 1.0 - b1**step, 1.0 - b2**step
                for p, g, a, v in zip(params, grads, m1, m2):
                    a.mul_(b1).add_(g, alpha=1.0 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
                    p.addcdiv_(a, (v / c2).sqrt_().add_(eps), value=-lr / c1)


class TVClassifier:
    r"""Certified lower bound on TV(law of the samples, pi) from a held-out classifier.

    For any classifier f and balanced classes (P = law of the samples, label 1; Q = pi, label 0)
    the population accuracy is
    :math:`\mathrm{acc}(f) = \tfrac12 (P(f=1) + Q(f=0)) = \tfrac12 (1 + P(f=1) - Q(f=1))
    \le \tfrac12 (1 + \mathrm{TV}(P, Q))`, i.e. :math:`\mathrm{TV} \ge 2\,\mathrm{acc}(f) - 1`.

    Procedure: ``m = min(#samples, #reference, n_mc)`` points of each set are chosen by
    ``ctx.generator`` permutations and each set is split into a training half (``m // 2``)
    and a held-out half (``m - m // 2``). Features are standardized with the mean/std of the
    pooled training halves. A 2-hidden-layer ReLU MLP (width ``width``, weights drawn from
    ``ctx.generator``: deterministic) is trained full-batch with Adam on the logistic loss for
    ``epochs`` steps. On the ``N = 2 (m - m//2)`` held-out points (independent of the trained f)
    the number correct ``K`` is a sum of two independent binomials (N/2 points each, success
    probabilities P(f=1) and Q(f=0)) with mean ``N acc(f)``;
    ``lower = max(0, 2 L_alpha(K, N) - 1)`` with ``L_alpha`` the one-sided Clopper-Pearson lower
    bound at ``alpha = 1 - confidence``. The upper tail ``P(K >= c)`` of such a sum is at most
    that of Bin(N, acc(f)) for ``c >= N acc(f) + 1`` (Hoeffding 1956, Thm. 4), which covers the
    counts at which ``L_alpha(K) > acc(f)``; so ``P(L_alpha > acc(f)) <= alpha`` (up to that
    one-count edge) and ``P(lower <= TV) >= confidence``.

    Training runs in float32 (speed; the bound's validity does not depend on how well f is
    trained); the accuracy count and the bound are exact.

    Keys
    ----
    acc : float
        Held-out accuracy K / N.
    lower : float
        The certified lower bound above.

    Parameters
    ----------
    width : int, default 64
        Width of the classifier's hidden layers.
    epochs : int, default 200
        Full-batch training epochs of the classifier.
    lr : float, default 1e-2
        Its Adam learning rate.
    n_mc : int, default 4000
        Monte Carlo size: the most points used from each set (samples, reference).
        Half of them train the classifier, the other half are held out.
    confidence : float, default 0.95
        Level of the one-sided lower bound on the held-out accuracy.
    """

    higher_is_better = True
    keys = ("acc", "lower")  # returned by __call__ (checked by bench check)
    #: old param names, answered by `bench check` with the new one
    renamed = {"hidden": "width", "max_n": "n_mc"}

    def __init__(self, width: int = 64, epochs: int = 200, lr: float = 1e-2, n_mc: int = 4000,
                 confidence: float = 0.95) -> None:
        self.width = positive_int("width", width)
        self.epochs = positive_int("epochs", epochs)
        self.lr = positive_float("lr", lr)
        self.n_mc = positive_int("n_mc", n_mc)
        if self.n_mc < 2:
            raise ValueError(f"parameter 'n_mc' must be >= 2 (one training and one held-out point), "
                             f"got {n_mc!r}")
        self.confidence = open_interval_float("confidence", confidence, 0.0, 1.0)

    def __call__(self, samples: Tensor, ctx: MetricContext) -> dict[str, float]:
        gen = ctx.generator
        device = samples.device
        m = min(samples.shape[0], ctx.reference.shape[0], self.n_mc)
        if m < 2:
            raise SkipMetric(f"tv_classifier needs at least 2 samples and 2 reference points (got "
                             f"{samples.shape[0]} and {ctx.reference.shape[0]})")
        dtype = torch.float32
        perm_s = torch.randperm(samples.shape[0], generator=gen, device=gen.device)[:m].to(device)
        perm_r = torch.randperm(ctx.reference.shape[0], generator=gen, device=gen.device)[:m].to(device)
        xs = samples.detach()[perm_s].to(dtype)
        xr = ctx.reference.detach().to(device)[perm_r].to(dtype)
        half = m // 2
        train_x = torch.cat([xs[:half], xr[:half]])
        train_y = torch.cat([torch.ones(half, device=device), torch.zeros(half, device=device)]).to(dtype)
        test_x = torch.cat([xs[half:], xr[half:]])
        test_y = torch.cat([torch.ones(m - half, device=device), torch.zeros(m - half, device=device)])
        center = train_x.mean(0)
        scale = train_x.std(0, correction=0).clamp_min(1e-12)
        train_x = (train_x - center) / scale
        test_x = (test_x - center) / scale
        if not (torch.isfinite(train_x).all() and torch.isfinite(test_x).all()):
            raise SkipMetric("tv_classifier: non-finite samples")

        model = _mlp(samples.shape[1], self.width, gen, device, dtype)
        _train_adam(model, train_x, train_y, epochs=self.epochs, lr=self.lr)
        with torch.no_grad():
            pred = (model(test_x).squeeze(-1) > 0).to(test_y.dtype)
        n_test = test_y.shape[0]
        correct = int((pred == test_y).sum())
        lcb = clopper_pearson_lower(correct, n_test, 1.0 - self.confidence)
        return {"acc": correct / n_test, "lower": max(0.0, 2.0 * lcb - 1.0)}


@hookimpl
def register_metrics(register):
    register("tv_witness", TVWitness,
             description="certified lower bound on TV from the score's witness region (Clopper-Pearson)")
    register("tv_classifier", TVClassifier,
             description="certified lower bound on TV from a held-out MLP classifier (TV >= 2 acc - 1)")
