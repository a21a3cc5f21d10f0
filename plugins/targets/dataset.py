"""A sample-only target made of data: a bundled table, an i.i.d. shape, or the user's file.

There is no density and no score (no ``log_prob``, no ``score``): components that need a closed form
are refused on it by ``bench check``. A *finite* data set (a bundled table or a file) has
``split(seed)`` (the Target protocol, bench_core.components.protocols): per seed, a random held-out
part, and preprocessing fitted on the training part only, so no metric compares against a row the score
was trained on and the held-out rows are transformed with statistics they did not enter. A *generated*
shape has no ``split`` (the harness draws fresh points from ``sample``) and is preprocessed with the
statistics of a fixed pilot draw.

Preprocessing, in order: dequantization (``x + u``, ``u ~ U[0, 1)`` per value: integer data such as
grey levels made continuous, Theis, van den Oord & Bethge, 2016, "A note on the evaluation of
generative models"), standardization (per column, ``(x - mean) / std``, population std), then an
optional projection on the top principal components (the scores ``(z - mean_z) V_k``).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, NamedTuple, Optional

import numpy as np
import torch
from torch import Tensor

from bench_core import (derive_seed, did_you_mean, hookimpl, nonnegative_float, nonnegative_int,
                        open_interval_float, resolve_suite_path, tensor_size)

from .data_files import check_rows, load_file
from .data_sources import BUNDLED, GENERATED, SOURCES, load_bundled

F64 = torch.float64
DEFAULT_HOLDOUT = 0.2
PILOT_ROWS = 100_000  # the generated shapes' pilot draw: its mean and std are within ~0.3% of the true ones
PILOT_SEED = 0


class Preprocessing(NamedTuple):
    """``x -> ((x - center) / scale) @ components`` (components None: no projection), all float64 on CPU."""

    center: Tensor
    scale: Tensor
    components: Optional[Tensor]

    def apply(self, x: Tensor) -> Tensor:
        """``x`` [n, d] float64 -> [n, k] float64 on the device of ``x``."""
        out = (x - self.center.to(x.device)) / self.scale.to(x.device)
        return out if self.components is None else out @ self.components.to(x.device)


def fit_preprocessing(train: Tensor, standardize: bool, dims: Optional[int]) -> Preprocessing:
    """Fit standardization and PCA on the float64 rows ``train`` [n, d].

    A column whose std is 0 (or below ``1e-12`` of its scale) is divided by 1, not 0. The principal
    components come from the SVD of the centered rows (no d x d covariance is formed); each is signed so
    that its largest entry is positive, so the projection is the same on every machine up to rounding.
    """
    d = train.shape[1]
    center, scale = torch.zeros(d, dtype=F64), torch.ones(d, dtype=F64)
    if standardize:
        center = train.mean(0)
        std = train.std(0, correction=0)
        scale = torch.where(std > 1e-12 * center.abs().clamp(min=1.0), std, scale)
    components = None
    if dims is not None:
        z = (train - center) / scale
        z_mean = z.mean(0)  # ~0 after standardization; PCA scores are of centered rows either way
        _, _, vh = torch.linalg.svd(z - z_mean, full_matrices=False)
        components = vh[:dims].T.contiguous()  # [d, k], by decreasing variance
        peak = components.abs().argmax(0)
        components *= torch.sign(components[peak, torch.arange(dims)])[None]
        center = center + z_mean * scale  # (x - c) / s - m == (x - (c + m s)) / s
    return Preprocessing(center, scale, components)


@lru_cache(maxsize=32)
def _pilot_preprocessing(source: str, noise: float, standardize: bool, dims: Optional[int]) -> Preprocessing:
    """The preprocessing of a generated shape, fitted on ``PILOT_ROWS`` points of a fixed seed (computed once)."""
    generator = torch.Generator().manual_seed(derive_seed(PILOT_SEED, "dataset-pilot", source, noise))
    return fit_preprocessing(GENERATED[source].draw(PILOT_ROWS, generator, noise), standardize, dims)


class DatasetTarget:
    """Data as a sample-only target: a named ``source`` or a file at ``path`` (exactly one of them).

    Parameters
    ----------
    source : str, optional
        ``digits`` (1797 x 64, 8 x 8 images), ``breast_cancer`` (569 x 30), ``wine`` (178 x 13): the
        tables shipped with scikit-learn; or an i.i.d. shape: ``moons``, ``circles`` (2-D),
        ``swiss_roll_2d`` (2-D), ``swiss_roll``, ``s_curve`` (3-D), see ``data_sources``.
    path : str, optional
        A ``.npy``, ``.npz``, ``.csv`` or ``.pt`` file of ``[N, d]`` rows; relative to the suite file.
    key : str, optional
        The array of a ``.npz`` archive holding several.
    standardize : bool
        Subtract the mean and divide by the std of each column (of the training rows; of the pilot draw
        for a generated shape).
    dequantize : bool, optional
        Add ``U[0, 1)`` noise to every value before anything else. Default: True when every value of the
        data is an integer (finite data only; refused on a generated shape).
    dims : int, optional
        Project on the top ``dims`` principal components of the standardized (training) rows.
    holdout : float, optional
        The held-out fraction of a finite data set, in (0, 1); default 0.2. Per seed
        ``max(1, floor(holdout * N + 0.5))`` rows are held out (rounding half up), the rest train.
    noise : float, optional
        The std of the Gaussian noise of a generated shape (defaults: moons 0.1, circles 0.05,
        swiss_roll and swiss_roll_2d 0.5, s_curve 0.1).
    image_shape : [h, w], optional
        Rows are h x w images (``h * w == dim``); default [8, 8] for ``digits``, none with ``dims``.

    Attributes
    ----------
    dim, image_shape (tuple or None), data_digest (the file's sha256, None otherwise); for finite data
    also ``n_rows`` and ``split``.
    """

    def __init__(self, source: Optional[str] = None, path: Optional[str] = None, key: Optional[str] = None,
                 standardize: bool = True, dequantize: Optional[bool] = None, dims: Optional[int] = None,
                 holdout: Optional[float] = None, noise: Optional[float] = None, image_shape: Any = None) -> None:
        if (source is None) == (path is None):
            raise ValueError("parameters 'source' and 'path': give exactly one of them (a named source such as "
                             f"'digits', or the path of a data file), got {'both' if source else 'neither'}")
        for name, value in (("standardize", standardize), ("dequantize", dequantize)):
            if not isinstance(value, bool) and not (value is None and name == "dequantize"):
                raise ValueError(f"parameter '{name}' must be true or false, got {value!r}")
        if source is not None and source not in SOURCES:
            raise ValueError(f"parameter 'source': unknown source {source!r}{did_you_mean(str(source), SOURCES)}; "
                             f"choose one of {', '.join(SOURCES)}, or give 'path' for a file")
        self.source, self.standardize = source, standardize
        self.data_digest: Optional[str] = None
        if source in GENERATED:
            self._init_generated(source, key, dequantize, dims, holdout, noise, image_shape)
        else:
            self._init_finite(source, path, key, dequantize, dims, holdout, noise, image_shape)

    # ---------------------------------------------------------------- construction

    def _init_generated(self, source: str, key: Any, dequantize: Any, dims: Any, holdout: Any, noise: Any,
                        image_shape: Any) -> None:
        spec = GENERATED[source]
        for name, value in (("key", key), ("holdout", holdout), ("image_shape", image_shape)):
            if value is not None:
                raise ValueError(f"parameter '{name}' does not apply to the generated source '{source}' (fresh "
                                 f"points, no file, no split); remove it")
        if dequantize:
            raise ValueError(f"parameter 'dequantize': source '{source}' is continuous already; remove it")
        self.noise = spec.default_noise if noise is None else nonnegative_float("noise", noise)
        self.dims = _dims(dims, spec.dim, f"source '{source}'")
        self.dim = self.dims or spec.dim
        self.image_shape = None

    def _init_finite(self, source: Optional[str], path: Any, key: Any, dequantize: Any, dims: Any,
                     holdout: Any, noise: Any, image_shape: Any) -> None:
        if noise is not None:
            raise ValueError(f"parameter 'noise' applies only to the generated sources ({', '.join(GENERATED)}); "
                             "remove it")
        if source is not None:
            if key is not None:
                raise ValueError("parameter 'key' applies only to a .npz file given by 'path'; remove it")
            where, rows = f"source '{source}'", check_rows(load_bundled(source), f"source '{source}'")
            default_shape = BUNDLED[source].image_shape
        else:
            if not isinstance(path, (str, bytes)) and not hasattr(path, "__fspath__"):
                raise ValueError(f"parameter 'path' must be a file path, got {path!r}")
            file = resolve_suite_path(path)
            rows, self.data_digest = load_file(file, key)
            where, default_shape = f"dataset file '{file}'", None
        n_rows, d = rows.shape
        # the rows, a dequantized copy and the standardized training and held-out rows
        tensor_size("path" if path is not None else "source", n_rows, per_unit=4 * d,
                    what=f"the copies of the {n_rows} x {d} rows of {where}")
        self.n_rows, self.key = n_rows, key
        self._rows = torch.from_numpy(rows)
        self.holdout = DEFAULT_HOLDOUT if holdout is None else open_interval_float("holdout", holdout, 0.0, 1.0)
        self._n_heldout = max(1, math.floor(self.holdout * n_rows + 0.5))
        if n_rows - self._n_heldout < 1:
            raise ValueError(f"parameter 'holdout' = {self.holdout:g} holds out {self._n_heldout} of the {n_rows} "
                             f"rows of {where}, leaving no training row; lower 'holdout'")
        self.dims = _dims(dims, min(d, n_rows - self._n_heldout), where)
        self.dim = self.dims or d
        self.image_shape = _image_shape(image_shape, default_shape, self.dim, self.dims, where)
        self.dequantize = bool(np.all(rows == np.floor(rows))) if dequantize is None else dequantize
        # the split's identity: what the rows are, not where they were read from
        self._identity = {"source": source, "data_digest": self.data_digest, "key": key, "holdout": self.holdout}
        self._prepared: dict[int, tuple[Tensor, Tensor, Preprocessing]] = {}
        self.split = self._split  # only finite data sets have `split`: the harness branches on hasattr

    def __repr__(self) -> str:
        what = f"source={self.source!r}" if self.source else f"data_digest={self.data_digest[:12]!r}"
        return f"DatasetTarget({what}, dim={self.dim})"

    # ---------------------------------------------------------------- finite data

    def _prepare(self, seed: int) -> tuple[Tensor, Tensor, Preprocessing]:
        """(training rows, held-out rows, preprocessing) of ``seed``, float64, computed once per seed."""
        if seed not in self._prepared:
            generator = torch.Generator().manual_seed(derive_seed(seed, "dataset-split", self._identity))
            order = torch.randperm(self.n_rows, generator=generator)
            rows = self._rows
            if self.dequantize:
                generator.manual_seed(derive_seed(seed, "dequantize", self._identity))
                rows = rows + torch.rand(rows.shape, generator=generator, dtype=F64)
            heldout, train = rows[order[:self._n_heldout]], rows[order[self._n_heldout:]]
            pre = fit_preprocessing(train, self.standardize, self.dims)
            self._prepared[seed] = (pre.apply(train), pre.apply(heldout), pre)
        return self._prepared[seed]

    def _split(self, seed: int) -> tuple[Tensor, Tensor]:
        """(training rows, held-out rows) of ``seed``, preprocessed with the training rows' statistics, in
        torch.get_default_dtype() on CPU. Fresh copies: the caller may modify them."""
        train, heldout, _ = self._prepare(nonnegative_int("seed", seed))
        dtype = torch.get_default_dtype()
        return train.to(dtype, copy=True), heldout.to(dtype, copy=True)

    def in_data_units(self, x: Tensor, seed: int) -> Tensor:
        """Rows of this target (as ``split(seed)`` gives them) back in the data's own units (an image's grey
        levels), undoing the standardization fitted on that seed's training rows; for pictures. Rows
        projected on principal components (``dims``) stay as they are."""
        pre = self._prepare(nonnegative_int("seed", seed))[2]
        if pre.components is not None:
            return x
        return x * pre.scale.to(x) + pre.center.to(x)

    # ---------------------------------------------------------------- sampling

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` points on the generator's device in torch.get_default_dtype().

        A generated shape: fresh i.i.d. points. A finite data set: ``n`` of its N rows drawn uniformly with
        replacement (dequantized with noise from ``generator`` when dequantizing), preprocessed with the
        statistics of seed 0's training rows. The harness never uses this for a finite data set's training
        set, reference or fresh starts: it uses ``split``.
        """
        device = generator.device
        if self.source in GENERATED:
            n = tensor_size("n", n, per_unit=2 * GENERATED[self.source].dim, what="the drawn points")
            points = GENERATED[self.source].draw(n, generator, self.noise)
            pre = _pilot_preprocessing(self.source, self.noise, self.standardize, self.dims)
        else:
            n = tensor_size("n", n, per_unit=2 * self._rows.shape[1], what="the drawn rows")
            index = torch.randint(self.n_rows, (n,), generator=generator, device=device)
            points = self._rows.to(device)[index]
            if self.dequantize:
                points += torch.rand(points.shape, generator=generator, device=device, dtype=F64)
            pre = self._prepare(0)[2]
        return pre.apply(points).to(torch.get_default_dtype())


def _dims(dims: Any, limit: int, where: str) -> Optional[int]:
    """``dims`` checked: an int in [1, limit] (limit: the columns, and for finite data the training rows)."""
    if dims is None:
        return None
    dims = tensor_size("dims", dims, per_unit=limit, what="the principal components")
    if dims > limit:
        raise ValueError(f"parameter 'dims' = {dims} exceeds the {limit} principal components of {where} (its "
                         f"columns, and for a data set its training rows); give dims <= {limit}")
    return dims


def _image_shape(value: Any, default: Optional[tuple[int, int]], dim: int, dims: Optional[int],
                 where: str) -> Optional[tuple[int, int]]:
    """The rows' (h, w): ``value`` checked against ``dim``; none once projected on principal components."""
    if value is None:
        return None if dims is not None else default
    if dims is not None:
        raise ValueError("parameters 'image_shape' and 'dims': principal-component rows are not images; remove "
                         "'image_shape' or 'dims'")
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValueError(f"parameter 'image_shape' must be [height, width], two integers >= 1, got {value!r}")
    if value[0] * value[1] != dim:
        raise ValueError(f"parameter 'image_shape' = {list(value)} has {value[0] * value[1]} pixels but the rows "
                         f"of {where} have dim = {dim} values; give [h, w] with h * w = {dim}")
    return (value[0], value[1])


@hookimpl
def register_targets(register):
    register("dataset", DatasetTarget,
             description="data, sample-only: scikit-learn's bundled tables, i.i.d. shapes, or a .npy/.npz/.csv/.pt "
                         "file; held-out split per seed")
