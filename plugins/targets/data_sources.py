"""The named sources of the ``dataset`` target: scikit-learn's bundled tables and i.i.d. 2-D/3-D shapes.

Bundled tables (``digits``, ``breast_cancer``, ``wine``) are read with ``sklearn.datasets.load_*``
from the files scikit-learn ships: nothing is ever downloaded (no ``fetch_*``). scikit-learn is
imported only when one of them is asked for.

Generated shapes (``moons``, ``circles``, ``swiss_roll``, ``swiss_roll_2d``, ``s_curve``) follow the geometry of
scikit-learn's ``make_*`` functions, but every point is an independent draw: its branch and its position
along the curve are drawn uniformly at random, then isotropic Gaussian noise of std ``noise`` is added.
(``make_moons`` and ``make_circles`` space their points *evenly* along the curves and split them
exactly in half: a grid, not a sample, so a sampler's output could never be compared with them by a
two-sample statistic.) They draw with torch from the generator passed in, so they are deterministic
given it and need no scikit-learn.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import numpy as np
import torch
from torch import Tensor

F64 = torch.float64

#: the ratio of the inner circle's radius to the outer one's in ``circles`` (make_circles' ``factor``)
CIRCLES_FACTOR = 0.5


class BundledSource(NamedTuple):
    """A table shipped with scikit-learn: the ``sklearn.datasets`` loader and the rows' image shape."""

    loader: str
    image_shape: Optional[tuple[int, int]]
    shape: tuple[int, int]  # (rows, columns), for the documentation and the tests


class GeneratedSource(NamedTuple):
    """An i.i.d. shape: ``draw(n, generator, noise) -> [n, dim]`` float64, its dimension and default noise."""

    draw: Callable[[int, torch.Generator, float], Tensor]
    dim: int
    default_noise: float


def _uniform(n: int, k: int, generator: torch.Generator) -> Tensor:
    """``[n, k]`` independent U[0, 1) draws in float64 on the generator's device."""
    return torch.rand(n, k, generator=generator, device=generator.device, dtype=F64)


def _add_noise(points: Tensor, noise: float, generator: torch.Generator) -> Tensor:
    """``points + noise * z`` with ``z ~ N(0, I)``; drawn even when ``noise = 0`` so the stream stays aligned."""
    z = torch.randn(points.shape, generator=generator, device=generator.device, dtype=F64)
    return points.add_(z, alpha=noise)


def draw_moons(n: int, generator: torch.Generator, noise: float) -> Tensor:
    """Two interleaved half circles (make_moons' geometry), i.i.d.

    ``c ~ Bernoulli(1/2)``, ``theta ~ U[0, pi]``; ``c = 0``: ``(cos theta, sin theta)`` (the upper
    moon), ``c = 1``: ``(1 - cos theta, 1/2 - sin theta)`` (the lower moon); then ``+ noise * N(0, I_2)``.
    """
    u = _uniform(n, 2, generator)
    lower = u[:, 0] < 0.5
    theta = math.pi * u[:, 1]
    x, y = torch.cos(theta), torch.sin(theta)
    points = torch.stack([torch.where(lower, 1.0 - x, x), torch.where(lower, 0.5 - y, y)], dim=1)
    return _add_noise(points, noise, generator)


def draw_circles(n: int, generator: torch.Generator, noise: float) -> Tensor:
    """Two concentric circles (make_circles' geometry, ``factor`` 0.5), i.i.d.

    ``c ~ Bernoulli(1/2)``, ``theta ~ U[0, 2 pi)``, radius ``r = 1`` (c = 0) or ``0.5`` (c = 1);
    the point ``r (cos theta, sin theta) + noise * N(0, I_2)``.
    """
    u = _uniform(n, 2, generator)
    radius = torch.where(u[:, 0] < 0.5, CIRCLES_FACTOR, 1.0)
    theta = 2.0 * math.pi * u[:, 1]
    points = torch.stack([radius * torch.cos(theta), radius * torch.sin(theta)], dim=1)
    return _add_noise(points, noise, generator)


def draw_swiss_roll(n: int, generator: torch.Generator, noise: float) -> Tensor:
    """The 3-D swiss roll of make_swiss_roll: ``t = 1.5 pi (1 + 2 u)``, ``u ~ U[0, 1)``, height
    ``h = 21 v``, ``v ~ U[0, 1)``; the point ``(t cos t, h, t sin t) + noise * N(0, I_3)``."""
    u = _uniform(n, 2, generator)
    t = 1.5 * math.pi * (1.0 + 2.0 * u[:, 0])
    points = torch.stack([t * torch.cos(t), 21.0 * u[:, 1], t * torch.sin(t)], dim=1)
    return _add_noise(points, noise, generator)


def draw_swiss_roll_2d(n: int, generator: torch.Generator, noise: float) -> Tensor:
    """The swiss roll seen along its axis: the spiral ``(t cos t, t sin t) + noise * N(0, I_2)``,
    ``t = 1.5 pi (1 + 2 u)``, ``u ~ U[0, 1)`` (the roll's x and z coordinates, the common 2-D toy)."""
    t = 1.5 * math.pi * (1.0 + 2.0 * _uniform(n, 1, generator)[:, 0])
    return _add_noise(torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1), noise, generator)


def draw_s_curve(n: int, generator: torch.Generator, noise: float) -> Tensor:
    """The 3-D S curve of make_s_curve: ``t = 3 pi (u - 1/2)``, ``u ~ U[0, 1)``, height ``h = 2 v``,
    ``v ~ U[0, 1)``; the point ``(sin t, h, sign(t) (cos t - 1)) + noise * N(0, I_3)``."""
    u = _uniform(n, 2, generator)
    t = 3.0 * math.pi * (u[:, 0] - 0.5)
    points = torch.stack([torch.sin(t), 2.0 * u[:, 1], torch.sign(t) * (torch.cos(t) - 1.0)], dim=1)
    return _add_noise(points, noise, generator)


BUNDLED: dict[str, BundledSource] = {
    # 8 x 8 images of handwritten digits, integer grey levels 0..16
    "digits": BundledSource("load_digits", (8, 8), (1797, 64)),
    "breast_cancer": BundledSource("load_breast_cancer", None, (569, 30)),
    "wine": BundledSource("load_wine", None, (178, 13)),
}

# default noises: about a tenth of each shape's smallest feature (the moons' and circles' gap between
# branches is 0.5, the swiss roll's gap between turns is 2 pi), so the branches stay apart
GENERATED: dict[str, GeneratedSource] = {
    "moons": GeneratedSource(draw_moons, 2, 0.1),
    "circles": GeneratedSource(draw_circles, 2, 0.05),
    "swiss_roll": GeneratedSource(draw_swiss_roll, 3, 0.5),
    "swiss_roll_2d": GeneratedSource(draw_swiss_roll_2d, 2, 0.5),
    "s_curve": GeneratedSource(draw_s_curve, 3, 0.1),
}

SOURCES: tuple[str, ...] = (*BUNDLED, *GENERATED)


def load_bundled(name: str) -> np.ndarray:
    """The rows of the bundled table ``name`` as a float64 ``[N, d]`` array (no download, ever).

    Raises
    ------
    ValueError
        When scikit-learn is not installed, saying how to install it.
    """
    try:
        from sklearn import datasets  # lazy: only the bundled tables need scikit-learn
    except ImportError:
        raise ValueError(f"source '{name}' needs scikit-learn: pip install 'bench[datasets]'") from None
    rows = getattr(datasets, BUNDLED[name].loader)().data
    return np.ascontiguousarray(rows, dtype=np.float64)
