"""Score estimates read from a neural network: ``network`` loads a user's own trained model.

A network answers ``model(x, tau)`` with ``x: [n, d]`` and ``tau: [n]``, where ``tau`` is (``time``)
the OU time ``t``, the noise scale ``sigma_t = sqrt(1 - e^{-2t})``, or the DDPM level ``k``
(1..1000 of the linear schedule of Ho et al. 2020, the level whose OU time is nearest to t). Its output
(``output``) is the score itself or the noise ``eps``, turned into a score by
``s_t(x) = -eps(x, tau) / sigma`` (Ho et al. 2020, eq. 11; ``sigma`` is the noise scale of the level
for ``time = "level"``). Langevin queries ``t = 0``: the network is read at ``t0`` there.
"""
from __future__ import annotations

import importlib
import inspect
import math
import os
from typing import Any, Optional

import torch
from torch import Tensor, nn

from bench_core import Target, TrainingData, choice, hookimpl, nonnegative_float, resolve_suite_path

from bench_plugins.samplers.schedules import level_times, nearest_level

OUTPUTS = ("eps", "score")
TIME_INPUTS = ("t", "sigma", "level")
CHUNK_ROWS = 8192  # rows per forward pass: bounded activations for any number of particles
#: OU time of DDPM level 10, where the paper reads its network for Langevin (-22.97 eps_theta)
LEVEL_10_TIME = level_times()[9]


class ModelScore:
    """``s_t(x)`` from ``model(x, tau)``: evaluated in eval mode, without gradients, in chunks of
    :data:`CHUNK_ROWS` rows, on the model's device and dtype (the result is in the dtype of ``x``);
    the factories put the model on the suite's device and dtype.

    Parameters
    ----------
    model : nn.Module
    output : {"eps", "score"}
    time : {"t", "sigma", "level"}
    t0 : float
        The time read when ``t = 0`` is queried (> 0 for ``output = "eps"``: ``sigma_0 = 0``).
    name : str
        Used in error messages.
    """

    rowwise = True  # it already evaluates in row chunks: the network must not couple the rows of a batch

    def __init__(self, model: nn.Module, *, output: str, time: str, t0: float, name: str = "network") -> None:
        self.model, self.output, self.time, self.t0, self.name = model.eval(), output, time, t0, name
        first = next(iter(model.parameters()), None)
        self.dtype = first.dtype if first is not None else torch.get_default_dtype()
        self.device = first.device if first is not None else torch.device("cpu")
        self.level_times = level_times()

    def level(self, t: float) -> int:
        """The DDPM level read for a query at OU time ``t`` (``t = 0`` reads at ``t0``)."""
        return nearest_level(self.t0 if t == 0 else t, self.level_times)

    def inputs(self, t: float) -> tuple[float, float]:
        """``(tau, sigma)``: the network's time input and the noise scale that converts eps to a score."""
        t_eff = self.t0 if t == 0 else float(t)
        if self.time == "level":
            k = nearest_level(t_eff, self.level_times)
            return float(k), math.sqrt(-math.expm1(-2.0 * self.level_times[k - 1]))
        sigma = math.sqrt(-math.expm1(-2.0 * t_eff))
        return (t_eff if self.time == "t" else sigma), sigma

    def __call__(self, x: Tensor, t: float) -> Tensor:
        tau, sigma = self.inputs(t)
        out = torch.empty_like(x)
        with torch.no_grad():
            for start in range(0, x.shape[0], CHUNK_ROWS):
                rows = x[start:start + CHUNK_ROWS].to(device=self.device, dtype=self.dtype)
                y = self.model(rows, torch.full((rows.shape[0],), tau, device=self.device, dtype=self.dtype))
                if not isinstance(y, Tensor) or tuple(y.shape) != tuple(rows.shape):
                    got = list(y.shape) if isinstance(y, Tensor) else type(y).__name__
                    raise ValueError(f"score '{self.name}': the network returned {got} for input "
                                     f"{list(rows.shape)}; expected the input's shape [n, d]")
                out[start:start + rows.shape[0]] = y.to(out)
        if self.output == "eps":
            out.mul_(-1.0 / sigma)
        return out


#: set to 1 (or ``bench run/check --allow-model-factories``) to let ``model`` name a function
ALLOW_FACTORIES_ENV = "BENCH_ALLOW_MODEL_FACTORIES"


def factories_allowed() -> bool:
    """Whether the user opted in, outside the suite, to ``model`` naming a function."""
    return os.environ.get(ALLOW_FACTORIES_ENV, "").strip().lower() in ("1", "true", "yes")


def import_object(spec: Any) -> Any:
    """``"package.module:attr"`` (``attr`` may be dotted) -> the object; ValueError naming ``model``.

    Only the import runs code: the attribute path is read with :func:`inspect.getattr_static`, so no
    property, descriptor or module ``__getattr__`` named by a suite is executed while looking it up.
    """
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(f"parameter 'model' must be \"package.module:attr\" (e.g. \"my_models:ScoreNet\"), "
                         f"got {spec!r}")
    module_name, attr = spec.split(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"parameter 'model': cannot import module '{module_name}' ({exc}); install it in "
                         "this environment or add its folder to PYTHONPATH") from None
    for part in attr.split("."):
        try:
            obj = inspect.getattr_static(obj, part)
        except AttributeError:
            raise ValueError(f"parameter 'model': module '{module_name}' has no attribute '{attr}'; "
                             "check the name after ':' (name the module that defines the class)") from None
    return obj


def build_model(model: Any, kwargs: Any) -> nn.Module:
    """Import ``model`` and build it with ``kwargs``; the result must be an ``nn.Module``.

    A suite file is data, and checking one someone sent you must not run what it names. So ``model``
    must be a subclass of ``torch.nn.Module``, checked before anything is called: ``"os:system"`` or
    ``"builtins:eval"`` is refused without being called. A function returning a module is accepted
    only when the user opts in outside the suite (:data:`ALLOW_FACTORIES_ENV`, or
    ``--allow-model-factories``), since any function could be named there.
    """
    if not isinstance(kwargs, dict):
        raise ValueError(f"parameter 'kwargs' must be a table of the model's arguments, got {kwargs!r}")
    factory = import_object(model)
    is_module_class = isinstance(factory, type) and issubclass(factory, nn.Module)
    if not is_module_class:
        kind = "class" if isinstance(factory, type) else type(factory).__name__
        if not (inspect.isfunction(factory) and factories_allowed()):
            opt_in = (f"; to build it with a function of your own, set {ALLOW_FACTORIES_ENV}=1 or pass "
                      "--allow-model-factories (a suite cannot opt in: it could name any function)"
                      if inspect.isfunction(factory) else "")
            raise ValueError(f"parameter 'model': '{model}' is a {kind}, not a torch.nn.Module subclass; name "
                             f"your nn.Module class{opt_in}")
    try:
        module = factory(**kwargs)
    except TypeError as exc:
        raise ValueError(f"parameter 'kwargs': {model}(**{kwargs}) failed: {exc}") from None
    if not isinstance(module, nn.Module):
        raise ValueError(f"parameter 'model': {model}(**kwargs) returned {type(module).__name__}, "
                         "not a torch.nn.Module")
    return module


def load_weights(module: nn.Module, weights: Any) -> None:
    """Load a ``state_dict`` file (``torch.load(..., weights_only=True)``) into ``module``, strictly."""
    if not isinstance(weights, str) or not weights:
        raise ValueError(f"parameter 'weights' must be the path of a state_dict file, got {weights!r}")
    path = resolve_suite_path(weights)
    if not path.is_file():
        raise ValueError(f"parameter 'weights': file '{path}' not found (a relative path is relative to "
                         "the suite file); save it with torch.save(model.state_dict(), path)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise ValueError(f"parameter 'weights': cannot load '{path}' as a state_dict ({type(exc).__name__}: "
                         f"{exc})") from None
    if not isinstance(state, dict):
        raise ValueError(f"parameter 'weights': '{path}' holds a {type(state).__name__}, not a state_dict; "
                         "save model.state_dict(), not the model")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        summary = " ".join(str(exc).split())
        raise ValueError(f"parameter 'weights': '{path}' does not match the module: {summary[:300]}") from None


def make_network_score(target: Target, data: TrainingData, *, model: str, output: str, time: str,
                       kwargs: Optional[dict] = None, weights: Optional[str] = None,
                       t0: Optional[float] = None) -> ModelScore:
    """The ``network`` score: a user's ``nn.Module``, imported, built, loaded and read as a score.

    The network must map each row of its batch on its own (no batch statistics, no attention across
    the batch): it is evaluated in chunks, and samplers evaluate it a block of rows at a time.

    Parameters
    ----------
    model : str
        ``"package.module:attr"``: an ``nn.Module`` subclass (a function returning one only with
        ``BENCH_ALLOW_MODEL_FACTORIES=1`` or ``--allow-model-factories``).
    output : {"eps", "score"}
        What the network predicts (required: a wrong guess would silently flip or rescale it).
    time : {"t", "sigma", "level"}
        What its second input is (required).
    kwargs : table, default {}
        Passed to ``attr(**kwargs)``.
    weights : str, optional
        A ``state_dict`` file, relative to the suite file unless absolute.
    t0 : float, optional
        Time read at ``t = 0``; default 0 for ``output = "score"`` and the time of DDPM level 10
        (0.000948) for ``"eps"``.
    """
    output = choice("output", output, OUTPUTS)
    time = choice("time", time, TIME_INPUTS)
    t0 = nonnegative_float("t0", LEVEL_10_TIME if t0 is None and output == "eps" else (t0 or 0.0))
    if output == "eps" and t0 == 0:
        raise ValueError("parameter 't0' must be > 0 for output = \"eps\": the noise scale sigma_0 is 0")
    if time == "level" and t0 == 0:
        raise ValueError("parameter 't0' must be > 0 for time = \"level\": levels start at 1")
    module = build_model(model, kwargs or {})
    if weights is not None:
        load_weights(module, weights)
    # the suite's device (where its training data lives) and dtype (the default dtype while plans and cells run)
    module = module.to(device=data.train.device, dtype=torch.get_default_dtype())
    return ModelScore(module, output=output, time=time, t0=t0, name=f"network {model}")


@hookimpl
def register_scores(register):
    register("network", make_network_score,
             description="your own trained nn.Module: model(x, tau) -> eps or score, tau = t | sigma | DDPM level")
