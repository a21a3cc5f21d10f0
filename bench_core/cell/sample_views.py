"""Small views of the samples of a cell: the trap made visible in the report, and data sets as pictures.

A claim says "ULA from N(0, I) stays in the ball"; the numbers say how far, a picture says where.
For every cell a claim selects, and every cell on a target whose rows are images or points of the
plane (first seed only), the runner keeps small summaries of its final samples and of as many
reference samples, computed where the cell ran:

- ``radial``: ``||x - c||`` with ``c`` the target's mean (its ``mean`` attribute when it has a
  ``[d]`` one, else the reference mean), the distance a trap changes;
- ``plane``: the 2-D projection onto ``u``, the direction of ``c`` (of the samples' mean minus the
  reference mean when ``c = 0``), and ``v``, the first coordinate axis least aligned with ``u``,
  made orthogonal to it;
- on a target with ``image_shape``: :data:`GRID_N` samples (one per start group: particles started
  at one point are stored next to each other), the nearest distinct training row of each with its
  distance (in the target's coordinates), and as many training and held-out rows (``images``, ``nearest``,
  ``nearest_dist``, ``train_images``, ``heldout_images``, ``image_shape``), in the data's own units when
  the target can map them back (``in_data_units(x, seed)``: a data set's grey levels);
- on a 2-D data set: the samples, the reference and the training rows in the target's own
  coordinates (``xy``, ``xy_ref``, ``xy_train``);
- for a score that knows its error (``deviation(x, t)``: the traps, the adversary), the error at
  t = 0 on a :data:`FIELD_N` x :data:`FIELD_N` grid of the same plane, spanning the samples and the
  reference: ``field_xy`` (grid points in plane coordinates), ``field_uv`` (the error projected on
  the plane) and ``field_norm`` (its full norm), so the report can draw what the error looks like
  where the particles are.

:data:`VIEW_N` points of each, float32: a few KB per cell whatever ``n`` and ``d`` are. They are
written to ``<out>/views/<cell id>.npz`` (the ``cell`` column of results.csv) by the driver and read back with the results.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from bench_core.base.atomic_files import write_npz_atomic
from bench_core.components.protocols import sample_only
from bench_core.plan.cells import Cell, Plan, select_matches

VIEW_N = 500
GRID_N = 16  # images of one picture grid
FIELD_N = 21  # grid points per axis of the error field in the plane
FOLDER = "views"


def claimed(plan: Plan, cell: Cell) -> bool:
    """Whether some claim of the suite selects this cell, and the cell has the suite's first seed."""
    claims = plan.suite.claims
    return bool(claims) and cell.seed == min(plan.suite.seeds) and any(select_matches(cell, c.select) for c in claims)


def _picture_kind(target: Any) -> Optional[str]:
    """``"images"`` for a target whose rows are images, ``"plane"`` for a 2-D data set, else None."""
    if getattr(target, "image_shape", None) is not None:
        return "images"
    return "plane" if target.dim == 2 and sample_only(target) else None


def wants_view(plan: Plan, cell: Cell, target: Any) -> bool:
    """A claimed cell, or a first-seed cell whose data the report draws (images, points of the plane)."""
    return claimed(plan, cell) or (_picture_kind(target) is not None and cell.seed == min(plan.suite.seeds))


def _center(target: Any, reference: Tensor) -> Tensor:
    mean = getattr(target, "mean", None)
    if isinstance(mean, Tensor) and tuple(mean.shape) == (reference.shape[1],):
        return mean.to(reference)
    return reference.mean(dim=0)


def _plane(center: Tensor, samples: Tensor, reference: Tensor) -> Tensor:
    """``[2, d]``: ``u`` along ``center`` (or the mean shift when the center is 0) and an orthogonal ``v``."""
    u = center if float(center.norm()) > 0 else samples.mean(dim=0) - reference.mean(dim=0)
    d = reference.shape[1]
    if float(u.norm()) == 0 or d == 1:
        u = torch.zeros(d, dtype=reference.dtype, device=reference.device)
        u[0] = 1.0
    u = u / u.norm()
    v = torch.zeros_like(u)
    if d > 1:
        v[int(torch.argmin(u.abs()))] = 1.0  # the axis least aligned with u: the best conditioned choice
        v = v - (v @ u) * u
        v = v / v.norm()
    return torch.stack([u, v])


def _spread(rows: Tensor, k: int) -> Tensor:
    """``k`` rows evenly spaced through ``rows`` (one per start group of grouped particles)."""
    return rows[torch.arange(min(k, rows.shape[0]), device=rows.device) * rows.shape[0] // min(k, rows.shape[0])]


def _pictures(x: Tensor, ref: Tensor, target: Any, data: Any, seed: int) -> dict[str, Tensor]:
    """The image grid (samples, nearest training rows, distances, data rows) or the plane's points."""
    train = data.distinct.to(device=x.device, dtype=torch.float64) if data is not None else ref[:0]
    kind = _picture_kind(target)
    if kind == "plane":
        return {"xy": x[:VIEW_N], "xy_ref": ref, "xy_train": train[:VIEW_N]}
    if kind is None:
        return {}
    images = _spread(x, GRID_N)
    heldout = getattr(data, "heldout", None)
    heldout = ref if heldout is None else heldout.to(device=x.device, dtype=torch.float64)
    out = {"images": images, "train_images": train[:GRID_N], "heldout_images": heldout[:GRID_N]}
    if train.shape[0]:
        distances = torch.cdist(images, train)  # GRID_N x n_train: small
        nearest = distances.argmin(dim=1)
        out.update(nearest=train[nearest], nearest_dist=distances.gather(1, nearest[:, None])[:, 0])
    units = getattr(target, "in_data_units", None)  # drawn in the data's own grey levels when it can
    if callable(units):
        out.update({k: units(out[k], seed) for k in ("images", "train_images", "heldout_images", "nearest")
                    if k in out})
    return out


def _field(score: Any, basis: Tensor, plane: Tensor) -> dict[str, Tensor]:
    """The score's error ``deviation(x, 0)`` on a grid of the plane through the origin spanned by ``basis``
    (the grid spans the projected points, ``plane``, with a 10% margin), or nothing without ``deviation``."""
    deviation = getattr(score, "deviation", None)
    if not callable(deviation) or plane.shape[0] == 0:
        return {}
    lo, hi = plane.min(dim=0).values, plane.max(dim=0).values
    pad = 0.1 * (hi - lo).clamp_min(1e-6)
    axes = [torch.linspace(float(lo[i] - pad[i]), float(hi[i] + pad[i]), FIELD_N, dtype=torch.float64)
            for i in range(2)]
    ab = torch.cartesian_prod(*axes).to(plane.device)
    points = ab @ basis  # [FIELD_N^2, d] in the target's coordinates
    dtype = torch.get_default_dtype()
    with torch.inference_mode():
        delta = deviation(points.to(dtype), 0.0).to(torch.float64)
    return {"field_xy": ab, "field_uv": delta @ basis.T, "field_norm": delta.norm(dim=1)}


def sample_view(samples: Tensor, reference: Tensor, target: Any, data: Any = None,
                seed: int = 0, score: Any = None) -> dict[str, np.ndarray]:
    """The radial distances and 2-D projections of the first :data:`VIEW_N` samples and reference points,
    and the pictures of an image or 2-D target (see the module docstring).

    Returns
    -------
    ``{"radial": [VIEW_N], "radial_ref": [VIEW_N], "plane": [VIEW_N, 2], "plane_ref": [VIEW_N, 2], ...}``
    (float32; fewer rows when there are fewer points; ``image_shape`` int64).
    """
    whole = samples.to(torch.float64)
    x = whole[:VIEW_N]
    ref = reference[:VIEW_N].to(device=x.device, dtype=torch.float64)
    center = _center(target, ref)
    basis = _plane(center, x, ref)
    plane, plane_ref = x @ basis.T, ref @ basis.T
    out = {"radial": (x - center).norm(dim=1), "radial_ref": (ref - center).norm(dim=1),
           "plane": plane, "plane_ref": plane_ref, **_pictures(whole, ref, target, data, seed),
           **_field(score, basis, torch.cat([plane, plane_ref]))}
    view = {k: v.to(torch.float32).cpu().numpy() for k, v in out.items()}
    if "images" in view:
        view["image_shape"] = np.asarray(target.image_shape, dtype=np.int64)
    return view


def save_view(out_dir: Path, key: str, view: dict[str, np.ndarray]) -> Path:
    """Write one cell's view (tmp file, then rename: a crash leaves no half file)."""
    path = Path(out_dir) / FOLDER / f"{key}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_npz_atomic(path, view)


def load_views(out_dir: Path, keys: Optional[set[str]] = None) -> dict[str, dict[str, np.ndarray]]:
    """The views in ``<out>/views`` (of ``keys`` only, when given); unreadable files are skipped."""
    folder = Path(out_dir) / FOLDER
    views = {}
    for path in sorted(folder.glob("*.npz")) if folder.is_dir() else ():
        if keys is not None and path.stem not in keys:
            continue
        try:
            with np.load(path) as data:
                views[path.stem] = {k: data[k] for k in data.files}
        except (OSError, ValueError):
            continue  # a damaged view loses a picture, never the report
    return views
