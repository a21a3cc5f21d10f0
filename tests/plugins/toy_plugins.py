"""Test-only components: a sampler that fails, one that diverges, a metric that breaks."""
from __future__ import annotations


from bench_core import hookimpl
from bench_core.errors import SkipCell


class Exploding:
    """Multiplies particles by 1e30 each step: non-finite after a few steps."""

    family = "langevin"

    def __init__(self, n_steps: int = 10) -> None:
        self.n_steps = n_steps

    def sample(self, score, x0, *, generator, callback=None):
        x = x0.clone()
        for k in range(1, self.n_steps + 1):
            x.mul_(1e30)
            if callback is not None:
                callback(k, float(k), x)
        return x


class Raising:
    family = "langevin"

    def sample(self, score, x0, *, generator, callback=None):
        raise RuntimeError("deliberate failure in toy sampler")


class Skipping:
    family = "langevin"

    def sample(self, score, x0, *, generator, callback=None):
        raise SkipCell("toy sampler does not apply to this target")


class Identity:
    family = "langevin"
    n_steps = 0

    def sample(self, score, x0, *, generator, callback=None):
        return x0.clone()


class BrokenMetric:
    higher_is_better = False

    def __call__(self, samples, ctx):
        raise ZeroDivisionError("deliberate failure in toy metric")


class StartMean:
    """Mean of the starting particles' first coordinate: exposes common random numbers."""

    higher_is_better = False

    def __call__(self, samples, ctx):
        return {"x0": float(ctx.x0[:, 0].double().mean()), "train": float(ctx.data.train[:, 0].double().mean())}


def strict_sampler(step_size: float = 0.1):
    if step_size <= 0:
        raise ValueError(f"parameter 'step_size' must be > 0, got {step_size}")
    return Identity()


@hookimpl
def register_samplers(register):
    register("toy_exploding", Exploding, description="diverges")
    register("toy_raising", Raising, description="raises")
    register("toy_skipping", Skipping, description="skips")
    register("toy_identity", Identity, description="returns its start")
    register("toy_strict", strict_sampler, description="rejects step_size <= 0")


@hookimpl
def register_metrics(register):
    register("toy_broken", BrokenMetric, description="raises")
    register("toy_start", StartMean, description="start and data means")
