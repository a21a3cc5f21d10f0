"""Small views of the samples of the cells a claim names: the trap made visible in the report.

A claim says "ULA from N(0, I) stays in the ball"; the numbers say how far, a picture says where.
For every cell a claim selects (first seed only), the runner keeps two small summaries of its
final samples and of as many reference samples, computed where the cell ran:

- ``radial``: ``||x - c||`` with ``c`` the target's mean (its ``mean`` attribute when it has a
  ``[d]`` one, else the reference mean), the distance a trap changes;
- ``plane``: the 2-D projection onto ``u``, the direction of ``c`` (of the samples' mean minus the
  reference mean when ``c = 0``), and ``v``, the first coordinate axis least aligned with ``u``,
  made orthogonal to it.

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
from bench_core.plan.cells import Cell, Plan, select_matches

VIEW_N = 500
FOLDER = "views"


def claimed(plan: Plan, cell: Cell) -> bool:
    """Whether some claim of the suite selects this cell, and the cell has the suite's first seed."""
    claims = plan.suite.claims
    return bool(claims) and cell.seed == min(plan.suite.seeds) and any(select_matches(cell, c.select) for c in claims)


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


def sample_view(samples: Tensor, reference: Tensor, target: Any) -> dict[str, np.ndarray]:
    """The radial distances and 2-D projections of the first :data:`VIEW_N` samples and reference points.

    Returns
    -------
    ``{"radial": [VIEW_N], "radial_ref": [VIEW_N], "plane": [VIEW_N, 2], "plane_ref": [VIEW_N, 2]}``
    (float32; fewer rows when there are fewer points).
    """
    x = samples[:VIEW_N].to(torch.float64)
    ref = reference[:VIEW_N].to(device=x.device, dtype=torch.float64)
    center = _center(target, ref)
    basis = _plane(center, x, ref)
    out = {"radial": (x - center).norm(dim=1), "radial_ref": (ref - center).norm(dim=1),
           "plane": x @ basis.T, "plane_ref": ref @ basis.T}
    return {k: v.to(torch.float32).cpu().numpy() for k, v in out.items()}


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
