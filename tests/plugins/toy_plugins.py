"""Test-only components: a sampler that fails, one that diverges, a metric that breaks."""
from __future__ import annotations


from bench_core import hookimpl
from bench_core.base.errors import SkipCell


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


class Faulty:
    """One sampler per fault: ``fault`` = exit | float64 | shape | list | device | alloc | nan_at | die |
    sleep | spin | slow_steps | die_once (needs ``marker``, a file path)."""

    family = "langevin"

    def __init__(self, fault: str = "exit", step: int = 3, marker: str = "") -> None:
        self.fault, self.step, self.marker = fault, step, marker

    def sample(self, score, x0, *, generator, callback=None):
        import sys

        import torch

        x = x0.clone()
        if self.fault == "exit":
            sys.exit(3)
        if self.fault == "float64":
            return x.double()
        if self.fault == "shape":
            return x[:, :1]
        if self.fault == "list":
            return x.tolist()
        if self.fault == "device":
            return x.to("meta")
        if self.fault == "alloc":
            torch.empty(1 << 62, dtype=torch.uint8)  # far beyond any machine
        if self.fault == "die":
            import os

            os._exit(7)  # the worker process dies mid-cell
        if self.fault == "die_once":  # dies the first time (leaving a marker file), succeeds when retried
            import os

            if not os.path.exists(self.marker):
                open(self.marker, "w").close()
                os._exit(7)
        if self.fault == "sleep":
            import time

            time.sleep(3600)
        if self.fault == "spin":
            while True:  # busy, never calls back
                pass
        if self.fault == "slow_steps":
            import time

            for k in range(1, 10 ** 6):
                time.sleep(0.01)
                if callback is not None:
                    callback(k, float(k), x)
        for k in range(1, 6):
            if self.fault == "nan_at" and k == self.step:
                x[0, 0] = float("nan")
            if callback is not None:
                callback(k, float(k), x)
        return x


class OnceOnlyScore:
    """A score whose factory works once (when bench check builds it) and raises afterwards: a factory
    that fails at run time, e.g. on another seed's training data."""

    built = 0

    def __init__(self, target, data) -> None:
        OnceOnlyScore.built += 1
        if OnceOnlyScore.built > 1:
            raise RuntimeError("deliberate failure in a score factory")
        self.target = target

    def __call__(self, x, t):
        return self.target.score(x, t)


class NumpyULA:
    """ULA whose step goes through numpy: it samples, but its output cannot be differentiated in the score."""

    family = "langevin"

    def __init__(self, step_size: float = 0.01, n_steps: int = 10) -> None:
        self.step_size, self.n_steps = step_size, n_steps

    def sample(self, score, x0, *, generator, callback=None):
        import torch

        x = x0.clone()
        for _ in range(self.n_steps):
            drift = score(x, 0.0).detach().cpu().numpy()
            x = torch.from_numpy(x.detach().cpu().numpy() + self.step_size * drift).to(x0)
            x.add_(torch.randn(x.shape, generator=generator, dtype=x.dtype), alpha=(2 * self.step_size) ** 0.5)
        return x


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
    register("toy_faulty", Faulty, description="one injected fault per instance")
    register("toy_numpy_ula", NumpyULA, description="ULA stepped in numpy (not differentiable)")


class GreedyScore:
    """Allocates ``table`` float64 numbers when built, without checking the size first (as a careless
    third-party plugin might): building it must be bounded at check time."""

    def __init__(self, target, data, table: int = 10) -> None:
        import torch

        self.table = torch.ones(int(table), dtype=torch.float64)

    def __call__(self, x, t):
        return -x


@hookimpl
def register_scores(register):
    register("toy_once_only", OnceOnlyScore, description="its factory raises after the first call")
    register("toy_greedy", GreedyScore, description="allocates its table size unchecked when built")


@hookimpl
def register_metrics(register):
    register("toy_broken", BrokenMetric, description="raises")
    register("toy_start", StartMean, description="start and data means")
