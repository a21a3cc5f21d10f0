"""``bench new KIND NAME``: a complete plugin distribution to start from.

It writes ``pyproject.toml`` (with the ``bench`` entry point), the module with a working example of
that kind, a README, a test that runs the conformance kit on everything the module registers, and
an example suite that uses the component. ``pip install -e DIR`` and it is listed by ``bench list``.
"""
from __future__ import annotations

import keyword
from pathlib import Path
from typing import Optional

from bench_core.base.errors import BenchError

KINDS = ("sampler", "score", "target", "metric")

_HEADER = '''"""{title}

Registered with bench through the entry point in pyproject.toml; see `bench describe {name}`.
"""
{imports}
from bench_core import hookimpl
{bench_imports}

'''

_IMPORTS = {"sampler": "import math\n\nimport torch\n", "score": "import math\n",
            "target": "import math\n\nimport torch\n", "metric": ""}
_PARAMS_IMPORTS = {"sampler": "from bench_core import positive_float, positive_int\n",
                   "target": "from bench_core import positive_int\n"}
_BODIES = {
    "sampler": '''
class {cls}:
    """Unadjusted Langevin algorithm (Roberts & Tweedie 1996): x <- x + h s(x, 0) + sqrt(2 h) xi.

    Parameters
    ----------
    step_size : float, default 0.01
        The step h (> 0).
    n_steps : int, default 500
        Number of steps (>= 1).
    """

    family = "langevin"  # "diffusion": start from N(0, I) at your horizon and ignore the initializer

    def __init__(self, step_size: float = 0.01, n_steps: int = 500) -> None:
        # the parameter helpers raise ValueError naming the parameter; bench check shows it with file and line
        self.step_size = positive_float("step_size", step_size)
        self.n_steps = positive_int("n_steps", n_steps)

    def sample(self, score, x0, *, generator, callback=None):
        x, h = x0.clone(), self.step_size  # never modify x0
        noise = torch.empty_like(x)
        for k in range(1, self.n_steps + 1):
            drift = score(x, 0.0)                    # the only thing a sampler sees of the target
            noise.normal_(generator=generator)       # all randomness from the given generator
            x.add_(drift, alpha=h).add_(noise, alpha=math.sqrt(2 * h))
            if callback is not None:
                callback(k, k * h, x)                # progress, checkpoints, divergence detection
        return x


@hookimpl
def register_samplers(register):
    register("{name}", {cls}, description="ULA, written as a plugin (edit me)")
''',
    "score": '''
class {cls}:
    """The target's exact score times ``scale``: a deliberately miscalibrated estimate.

    Parameters
    ----------
    scale : float, default 1.0
        Multiplies the exact score grad log p_t(x).
    """

    def __init__(self, target, data, scale: float = 1.0) -> None:
        if not (isinstance(scale, (int, float)) and math.isfinite(scale)):
            raise ValueError(f"parameter 'scale' must be a finite number, got {{scale!r}}")
        self.target, self.scale = target, float(scale)

    def __call__(self, x, t):
        return self.scale * self.target.score(x, t)


@hookimpl
def register_scores(register):
    register("{name}", {cls}, description="the exact score times a scale (edit me)")
''',
    "target": '''
class {cls}:
    """N(mean * 1, I_dim), whose OU marginal p_t is N(e^{{-t}} mean * 1, I).

    Parameters
    ----------
    dim : int, default 2
        Dimension.
    mean : float, default 1.0
        Every coordinate's mean.
    """

    def __init__(self, dim: int = 2, mean: float = 1.0) -> None:
        self.dim, self.mean = positive_int("dim", dim), float(mean)

    def sample(self, n, generator):
        return self.mean + torch.randn(n, self.dim, generator=generator, dtype=torch.get_default_dtype())

    def log_prob(self, x, t=0.0):
        centered = x - math.exp(-t) * self.mean
        return -0.5 * (centered.pow(2).sum(-1) + self.dim * math.log(2 * math.pi))

    def score(self, x, t=0.0):
        return math.exp(-t) * self.mean - x


@hookimpl
def register_targets(register):
    register("{name}", {cls}, description="a unit-covariance Gaussian (edit me)")
''',
    "metric": '''
class {cls}:
    """| mean ||x||^2 of the samples - mean ||y||^2 of the reference |: a second-moment error."""

    higher_is_better = False

    def __call__(self, samples, ctx):
        produced = samples.double().pow(2).sum(-1).mean()
        reference = ctx.reference.double().pow(2).sum(-1).mean()
        return float((produced - reference).abs())


@hookimpl
def register_metrics(register):
    register("{name}", {cls}, description="second-moment error (edit me)")
''',
}

_SUITES = {
    "sampler": ('[[targets]]\nname = "gaussian"\nparams = {{ dim = 2, mean = 1.0 }}\n\n'
                '[[samplers]]\nname = "{name}"\n\n[[metrics]]\nname = "mean_error"\n'),
    "score": ('[[targets]]\nname = "gaussian"\nparams = {{ dim = 2, mean = 1.0 }}\n\n'
              '[[scores]]\nname = "{name}"\nparams = {{ scale = 1.0 }}\n\n'
              '[[samplers]]\nname = "ula"\nparams = {{ step_size = 0.01, n_steps = 500 }}\n\n'
              '[[metrics]]\nname = "mean_error"\n'),
    "target": ('[[targets]]\nname = "{name}"\n\n[[samplers]]\nname = "ula"\n'
               'params = {{ step_size = 0.01, n_steps = 500 }}\n\n[[metrics]]\nname = "energy"\n'),
    "metric": ('[[targets]]\nname = "gaussian"\nparams = {{ dim = 2, mean = 1.0 }}\n\n'
               '[[samplers]]\nname = "ula"\nparams = {{ step_size = 0.01, n_steps = 500 }}\n\n'
               '[[metrics]]\nname = "{name}"\n'),
}

_TEST = '''"""The conformance kit on every component {name} registers (bench's pytest plugin)."""
import {name}


def test_every_component_conforms(bench_plugin_check):
    assert bench_plugin_check({name})  # protocol, shapes, determinism; a sampler must land on the kit's Gaussians


def test_it_runs_in_a_suite(bench_tiny_suite, tmp_path):
    from bench_core import run_suite
    from bench_core.kit import plugin_registry

    suite = tmp_path / "tiny.toml"
    suite.write_text(bench_tiny_suite("{kind}s", "{name}"))
    registry = plugin_registry({name})  # the built-ins and the module itself, installed or not
    assert run_suite(suite, out=tmp_path / "out", registry=registry).exit_code == 0
'''


def scaffold(kind: str, name: str, directory: Optional[str | Path] = None) -> Path:
    """Write the plugin distribution for a ``kind`` component called ``name``; return its folder."""
    if kind not in KINDS:
        raise BenchError(f"bench new: kind '{kind}' is not one of {', '.join(KINDS)}")
    if not name.isidentifier() or keyword.iskeyword(name) or not name.islower():
        raise BenchError(f"bench new: NAME '{name}' must be a lowercase Python identifier such as my_{kind} "
                         "(it names the module and the component)")
    folder = Path(directory) if directory else Path(name)
    if folder.exists() and any(folder.iterdir()):
        raise BenchError(f"bench new: {folder} exists and is not empty; choose another --dir")
    cls = "".join(part.capitalize() for part in name.split("_")) or "Component"
    dist = name.replace("_", "-")
    title = f"{name}: a bench {kind} plugin."
    files = {
        f"{name}.py": (_HEADER.format(title=title, name=name, imports=_IMPORTS[kind],
                                  bench_imports=_PARAMS_IMPORTS.get(kind, ""))
                       + _BODIES[kind].format(name=name, cls=cls).lstrip("\n")),
        "pyproject.toml": (f'[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
                           f'[project]\nname = "{dist}"\nversion = "0.1.0"\ndescription = "{title}"\n'
                           f'requires-python = ">=3.10"\ndependencies = ["bench"]\n\n'
                           f'[project.optional-dependencies]\ntest = ["pytest>=7.4"]\n\n'
                           f'[project.entry-points.bench]\n{name} = "{name}"\n\n'
                           f'[tool.setuptools]\npy-modules = ["{name}"]\n'),
        "README.md": (f"# {dist}\n\nA {kind} for bench, registered as `{name}`.\n\n```bash\npip install -e \".[test]\"\n"
                      f"python -m pytest           # the conformance kit on every component\nbench describe {name}\n"
                      f"bench run suites/example.toml\n```\n"),
        f"tests/test_{name}.py": _TEST.format(name=name, kind=kind),
        "suites/example.toml": (f'[suite]\nname = "{name}_example"\nseeds = [0, 1]\nn_samples = 1000\n'
                                f'device = "cpu"\n\n' + _SUITES[kind].format(name=name)),
    }
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder
