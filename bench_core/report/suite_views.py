"""Per-suite views of ``report.html``: the paper's tables and figures, each shown when its data is there.

:func:`suite_views` returns ``(anchor, heading, html)`` per view. A view detects its data by what the
results contain (metrics, component names, params), not by the suite's name: a user's suite of the
same shape gets the view too.

- ``view-table1``: ``gaussian_kl`` of ULA at the paper's protocol (h = 0.0025, 1000 steps, ula's defaults)
  from ``standard_normal`` on a ``gaussian`` with dim 50, unit std and a scalar mean ``a`` of Table 1,
  for ``exact`` and/or ``ball_trap``: the paper's Table 1 next to bench's numbers.
- ``view-theorem7``: ``tv_witness.lower`` of a ``memorized`` score from Langevin starts on targets whose
  ``dim`` param takes two or more values: TV against dimension, a line per start.
- ``view-theorem11``: ``tv_witness.lower`` of a ``cone_trap`` at two or more horizons (checkpoint steps in
  trajectory.csv and/or the sampler's ``n_steps``): TV against the horizon, a line per score.
- ``view-section4``: targets with a learned score (``ddpm_mlp``, ``empirical``, ``network``) and any of
  :data:`S4_METRICS`: per-start bars and table, the memorization curve over an ``epochs`` grid, and
  ``ddpm_mlp``'s training loss curves, read from the copies in the results folder that run.json's
  ``networks`` lists (never from the suite file or the network cache).

Values are means over seeds ± the 95% Student-t half-width (as in the leaderboard); every text from
the data is HTML-escaped; figures are base64 PNG from :mod:`bench_core.report.view_figures`.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from bench_core.report import view_figures as figures
from bench_core.findings.contrast import tv_metric_for
from bench_core.report.html_parts import escape as _e, figure as _figure, table as _table
from bench_core.findings.labels import component_label, short_names
from bench_core.results.run_results import RunResults
from bench_core.base.stats import ci95_halfwidth

# Cao, Chen, Sridharan, Wu (2026), Table 1 (Theorem 1, the ball trap): d = 50, ULA
# h = 0.0025 for 1000 steps from N(0, I), 10 trials. a -> (||mu||, KL with the true score, KL with s_hat
# as the paper predicts it: ~25 a^2 = KL(N(0, I) || N(a 1, I_50)), the KL of trapped particles).
PAPER_TABLE1 = {1: (7.07, 0.308, 25.0), 2: (14.1, 0.815, 100.0), 3: (21.2, 1.66, 225.0), 4: (28.3, 2.84, 400.0),
                5: (35.4, 4.35, 625.0), 6: (42.4, 6.20, 900.0), 7: (49.5, 8.39, 1225.0)}
TABLE1_DIM, TABLE1_STEP, TABLE1_STEPS = 50, 0.0025, 1000
TV = "tv_witness.lower"
LEARNED = ("ddpm_mlp", "empirical", "network")
S4_METRICS = {"gaussian_kl": "Gaussian-fit KL (nats)", "sinkhorn.value": "Sinkhorn divergence (squared distance)",
              "nearest_train.ratio": "nearest-train distance ratio (1: fresh draws)",
              "tv_modes.lower": "TV lower bound from mode masses"}
BAND = "band: 95% interval over seeds"


@lru_cache(maxsize=None)
def _params(text: str) -> dict:
    """Canonical-JSON params as a dict (cached, so read-only)."""
    return json.loads(text) if text else {}


def _without(text: str, key: str) -> str:
    return json.dumps({k: v for k, v in _params(text).items() if k != key}, sort_keys=True, separators=(",", ":"))


def _fmt(mean: float, ci: float) -> str:
    return "n/a" if not math.isfinite(mean) else f"{mean:.4g}" + (f" ± {ci:.2g}" if math.isfinite(ci) else "")


def _short_labels(frame: pd.DataFrame, axis: str) -> pd.Series:
    """The :func:`bench_core.findings.labels.short_names` of each row's component on ``axis``."""
    names = short_names(list(zip(frame[axis], frame[f"{axis}_params"])))
    return pd.Series(names, index=frame.index, dtype=object)


def _grid(frame: pd.DataFrame, rows: dict[str, str], column: str, order: Optional[list] = None) -> str:
    """A table of ``mean ± ci``: a row per value of the ``rows`` columns (renamed), a column per ``column`` value."""
    cells = frame.assign(_v=[_fmt(m, c) for m, c in zip(frame["mean"], frame["ci"])])
    table = cells.pivot_table(index=list(rows), columns=column, values="_v", aggfunc="first", sort=False)
    table = table.reindex(columns=order) if order is not None else table
    table.columns.name = None
    return _table(table.reset_index().rename(columns=rows))


def _table1_a(target_params: str) -> Optional[float]:
    """The ``a`` of N(a 1, I_50) when the target is one of Table 1's, else None."""
    p, mean = _params(target_params), _params(target_params).get("mean", 0.0)
    mean = mean[0] if isinstance(mean, list) and len(set(mean)) == 1 else mean
    ok = p.get("dim") == TABLE1_DIM and p.get("std", 1.0) == 1.0 and not isinstance(mean, list)
    return float(mean) if ok and float(mean) in PAPER_TABLE1 else None


def _table1(run: RunResults) -> str:
    s = run.summary.rename(columns={"ci95": "ci"})
    s = s[(s["metric"] == "gaussian_kl") & (s["target"] == "gaussian") & (s["initializer"] == "standard_normal")
          & (s["sampler"] == "ula") & s["score"].isin(["exact", "ball_trap"])]
    protocol = s["sampler_params"].map(lambda p: _params(p).get("step_size", TABLE1_STEP) == TABLE1_STEP
                                       and _params(p).get("n_steps", TABLE1_STEPS) == TABLE1_STEPS)  # ula's defaults
    s = s[protocol.astype(bool)]
    s = s.assign(a=s["target_params"].map(_table1_a)).dropna(subset=["a"])
    if s.empty:
        return ""
    s = s.assign(label=[component_label(n, p) for n, p in zip(s["score"], s["score_params"])])
    s = s.drop_duplicates(["a", "label"])  # ula written with and without its default params
    columns = [("exact", 1, "KL, true score (paper)")] + [
        (t, 2, "KL, ŝ (paper: ~25a²)") for t in dict.fromkeys(s[s["score"] == "ball_trap"]["label"])]
    rows = []
    for a in sorted(s["a"].unique()):
        paper, at = PAPER_TABLE1[int(a)], s[s["a"] == a].set_index("label")
        row: dict[str, Any] = {"a": f"{a:g}", "‖μ‖ (paper)": f"{paper[0]:g}", "seeds": int(at["n"].max())}
        for label, i, name in columns:
            row[name] = f"{paper[i]:g}"  # several ball traps share the paper's column
            mean, ci = (at.loc[label, "mean"], at.loc[label, "ci"]) if label in at.index else (math.nan, math.nan)
            row[f"bench: {label}"] = _fmt(mean, ci) if label in at.index else "not run"
            row[f"bench − paper ({label})"] = f"{mean - paper[i]:+.3g}" if label in at.index else "not run"
        rows.append(row)
    n = run.info.get("n_samples")
    bias = (f" The fit's finite-sample bias d(d+3)/(4n) is {TABLE1_DIM * (TABLE1_DIM + 3) / (4 * n):.3g} at this "
            f"run's n_samples = {n} (0.1325 at n = 5000, the size that reproduces the paper's column)."
            if isinstance(n, int) and n > 0 else "")
    return ('<p class="note">Cao et al. (2026), Table 1: ULA (h = 0.0025, 1000 steps) from N(0, I) on '
            "N(a·1, I<sub>50</sub>), KL of a full-covariance Gaussian fit, with the true score and with the ball "
            "trap ŝ (the paper's ŝ column is a prediction, ~25a², the KL of trapped particles). bench: "
            "<code>gaussian_kl</code>, mean ± 95% interval over seeds, and its difference from the paper, for the a "
            f"values of this run.{bias}</p>" + _table(pd.DataFrame(rows)))


def _theorem7(run: RunResults) -> str:
    tv = run.summary.rename(columns={"ci95": "ci"})
    has_dim = tv["target_params"].map(lambda p: "dim" in _params(p)).astype(bool)
    metric = tv_metric_for("memorized", set(tv["metric"])) or TV  # the wells' own witness set first
    tv = tv[(tv["metric"] == metric) & (tv["initializer"] != "prior") & has_dim]
    if not (tv["score"] == "memorized").any():
        return ""
    tv = tv.assign(x=tv["target_params"].map(lambda p: float(_params(p)["dim"])),
                   rest=tv["target_params"].map(lambda p: _without(p, "dim")))
    parts = []
    for (target, rest, sampler, sparams), block in tv.groupby(["target", "rest", "sampler", "sampler_params"]):
        dims = sorted(block["x"].unique())
        if not (block["score"] == "memorized").any() or len(dims) < 2:
            continue
        block = block.assign(panel=_short_labels(block, "score"), line=_short_labels(block, "initializer"))
        # the trap first; a score measured at one dimension only has no curve to show
        order = sorted((p for p, rows in block.groupby("panel") if rows["x"].nunique() >= 2),
                       key=lambda p: not p.startswith("memorized"))
        block = block[block["panel"].isin(order)]
        title = f"{component_label(target, rest)}, {component_label(sampler, sparams)}"
        png = figures.band_lines([(p, block[block["panel"] == p]) for p in order], x_label="dimension d",
                                 y_label="certified TV lower bound", legend_title=f"start (initializer); {BAND}",
                                 title=title, y_limits=(0.0, 1.0), x_ticks=dims)
        parts += [f"<h3>{_e(title)}</h3>", _figure(png, f"{title}: {metric} against the dimension, per start"),
                  _grid(block.assign(d=[f"d = {x:g}" for x in block["x"]]), {"panel": "score", "line": "start"}, "d",
                        [f"d = {x:g}" for x in dims])]
    return ('<p class="note">Theorem 7: a memorized score traps chains started at the training points. Certified TV '
            f"lower bound <code>{_e(metric)}</code> (the wells as witness set).</p>" + "".join(parts)) if parts else ""


def _theorem11(run: RunResults) -> str:
    if not (run.results["score"] == "cone_trap").any():
        return ""
    # TV per (cell, step): the checkpoints, and each cell's final value at its sampler's n_steps
    metric = tv_metric_for("cone_trap", set(run.results["metric"])) or TV  # the cone's own witness set first
    final = run.results[(run.results["metric"] == metric) & (run.results["status"] == "done")]
    final = final.assign(step=final["sampler_params"].map(lambda p: _params(p).get("n_steps", math.nan)))
    traj = run.trajectory[(run.trajectory["metric"] == metric) & (run.trajectory["status"] == "done")]
    points = pd.concat([traj, final], ignore_index=True).drop_duplicates(["cell", "step"])
    points = points.assign(step=pd.to_numeric(points["step"]), value=pd.to_numeric(points["value"], errors="coerce"),
                           rest=points["sampler_params"].map(lambda p: _without(p, "n_steps")))
    points = points[(points["step"] > 0) & np.isfinite(points["value"])]
    parts, keys = [], ["target", "target_params", "initializer", "initializer_params", "sampler", "rest"]
    for key, block in points.groupby(keys):
        if not (block["score"] == "cone_trap").any() or block["step"].nunique() < 2:
            continue
        grouped = block.assign(line=_short_labels(block, "score")).groupby(["line", "step"], sort=False)["value"]
        frame = grouped.agg(mean="mean").reset_index().rename(columns={"step": "x"})
        frame["ci"] = grouped.apply(lambda v: ci95_halfwidth(v.to_numpy())).to_numpy()
        title = f"{component_label(*key[:2])}, {component_label(*key[4:])} from {component_label(*key[2:4])}"
        png = figures.band_lines([("", frame)], x_label="horizon: sampler steps (log scale)", log_x=True, title=title,
                                 y_label="certified TV lower bound", legend_title=f"score; {BAND}", y_limits=(0.0, 1.0))
        steps = frame.sort_values("x").assign(x=lambda f: f["x"].map("{:g}".format))
        parts += [f"<h3>{_e(title)}</h3>", _figure(png, f"{title}: {metric} against the number of steps"),
                  _grid(steps, {"x": "steps"}, "line")]
    return ('<p class="note">Theorem 11: the cone trap captures Langevin as the horizon grows. Certified TV lower '
            f"bound <code>{_e(metric)}</code> (the cone as witness set) at the checkpoint steps and at each sampler's "
            "<code>n_steps</code>; step 0 has no place on the log axis.</p>" + "".join(parts)) if parts else ""


def _loss_curves(run: RunResults, folder: Optional[Path]) -> tuple[pd.DataFrame, str]:
    """The training loss of each ``ddpm_mlp`` network this run's cells use, read from the results folder
    (run.json's ``networks`` names the copies, ``networks/<key>/loss.csv``); and what is missing, if anything."""
    networks = run.info.get("networks")
    if not isinstance(networks, list):
        return pd.DataFrame(), ("run.json has no record of the trained networks (a folder written by an older "
                                "bench); running the suite again into this folder records them")
    r = run.results
    have = set(zip(r["target"], r["target_params"], r["score"], r["score_params"], r["seed"].astype(int)))
    frames, missing = [], []
    for net in networks:
        try:
            uses = [u for u in net.get("uses") or () if u.get("score") == "ddpm_mlp" and (
                u.get("target"), u.get("target_params"), u.get("score"), u.get("score_params"), int(u.get("seed")))
                in have]
            if not uses:
                continue
            relative = net.get("loss_curve") or f"networks/{net.get('key')}/loss.csv"
            path = Path(folder) / relative if folder is not None else None
            if path is None or not path.is_file():
                missing.append(str(relative))
                continue
            curve = pd.read_csv(path)
            marks = tuple(sorted(int(e) for e in net.get("snapshots") or ()))
            curve = curve[curve["epoch"] <= max(marks)] if marks else curve
            for u in uses:
                frames.append(curve.assign(target=component_label(u["target"], u["target_params"]), score=u["score"],
                                           score_params=_without(u["score_params"], "epochs"), run=str(net["key"]),
                                           mark=[marks] * len(curve)))
        except Exception as exc:  # noqa: BLE001 - an optional figure must never fail the report
            missing.append(f"{net.get('loss_curve') or net.get('key')} ({type(exc).__name__}: {exc})"
                           if isinstance(net, dict) else f"an unreadable record ({type(net).__name__})")
    notes = []
    if missing:
        where = f" of '{folder}'" if folder is not None else ""
        notes.append(f"{len(missing)} loss curve(s) missing from the results folder{where}: {', '.join(missing)}")
    if not frames and not missing:
        notes.append("run.json records no trained network for this run's ddpm_mlp cells")
    if not frames:
        return pd.DataFrame(), "; ".join(notes)
    frame = pd.concat(frames, ignore_index=True).drop_duplicates(["run", "target", "epoch"])
    return frame.assign(network=_short_labels(frame, "score")), "; ".join(notes)


def _section4(run: RunResults, folder: Optional[Path]) -> str:
    s = run.summary
    present = [m for m in S4_METRICS if (s["metric"] == m).any()]
    if not present or not s["score"].isin(LEARNED).any():
        return ""
    losses, why = _loss_curves(run, folder) if (run.results["score"] == "ddpm_mlp").any() else (pd.DataFrame(), "")
    parts = []
    for (target, tparams), block in s[s["metric"].isin(present)].groupby(["target", "target_params"], sort=False):
        if not block["score"].isin(LEARNED).any():
            continue
        title = component_label(target, tparams)
        block = block.assign(group=_short_labels(block, "score") + " · " + _short_labels(block, "sampler"),
                             hue=_short_labels(block, "initializer"), ci=block["ci95"])
        null = s[(s["metric"] == "sinkhorn.null") & (s["target"] == target) & (s["target_params"] == tparams)]
        refs = {"sinkhorn.value": (null["mean"].mean(), "Sinkhorn null (two exact samples)"),
                "nearest_train.ratio": (1.0, "ratio 1: as far as fresh draws")}
        panels = [(S4_METRICS[m], block[block["metric"] == m], refs.get(m)) for m in present
                  if (block["metric"] == m).any()]
        png = figures.grouped_bars(panels, group_label="score · sampler", title=title,
                                   legend_title="start (initializer); bars: mean, whiskers: 95% interval")
        parts += [f"<h3>{_e(title)}</h3>", _figure(png, f"{title}: {', '.join(present)} per configuration and start"),
                  _grid(block, {"group": "score · sampler", "hue": "start"}, "metric", present),
                  _memorization(block, title)]
        mine = losses[losses["target"] == title] if len(losses) else losses
        if len(mine):
            png = figures.loss_curves(mine, title=f"{title}: ddpm_mlp training loss",
                                      marks=sorted({e for m in mine["mark"] for e in m}))
            parts.append(_figure(png, f"{title}: DDPM training loss of each network (one per seed and recipe) "
                                      "against the epoch, as recorded in the results folder"))
    if why:
        shown = "Some training loss curves not shown" if len(losses) else "Training loss curves not shown"
        parts.append(f'<p class="note">{shown}: {_e(why)}.</p>')
    return ('<p class="note">Section 4: learned scores from each start (initializer; <code>prior</code>: a diffusion '
            "sampler's own start). Labels leave out the params shared by every configuration of a component.</p>"
            + "".join(parts)) if parts else ""


def _memorization(block: pd.DataFrame, title: str) -> str:
    """The metrics against the ``epochs`` grid of a score, a line per start (and recipe); "" without a grid."""
    ep = block[block["score_params"].map(lambda p: "epochs" in _params(p))]
    recipe = ep["score_params"].map(lambda p: _without(p, "epochs"))
    ep = ep.assign(x=ep["score_params"].map(lambda p: float(_params(p)["epochs"])),
                   family=ep["score"] + recipe + ep["sampler"] + ep["sampler_params"], score_params=recipe)
    ep = ep[ep.groupby("family")["x"].transform("nunique") > 1]
    if ep.empty:
        return ""
    recipes = _short_labels(ep, "score") + " · " + _short_labels(ep, "sampler") + " · "
    ep = ep.assign(line=(recipes if ep["family"].nunique() > 1 else "") + ep["hue"])
    epochs = sorted(ep["x"].unique())
    panels = [(S4_METRICS[m], ep[ep["metric"] == m]) for m in S4_METRICS if (ep["metric"] == m).any()]
    png = figures.band_lines(panels, x_label="training epochs", y_label="", share_y=False, x_ticks=epochs,
                             legend_title=f"start (initializer); {BAND}", title=f"{title}: memorization curve",
                             log_x=epochs[-1] / epochs[0] > 20)
    return _figure(png, f"{title}: memorization curve, the metrics against the training epochs (snapshots of one run)")


def suite_views(run: RunResults, out_dir: Optional[Path] = None) -> list[tuple[str, str, str]]:
    """(anchor, heading, html) for each view whose data is present in the run; [] when none.

    ``out_dir``: the results folder, when ``run`` does not name it (``run.folder``); the views read
    nothing outside it."""
    views = [("view-table1", "Table 1: the paper against bench", _table1(run)),
             ("view-theorem7", "Theorem 7: TV against dimension", _theorem7(run)),
             ("view-theorem11", "Theorem 11: TV against the horizon", _theorem11(run)),
             ("view-section4", "Section 4: learned scores", _section4(run, run.folder or out_dir))]
    return [view for view in views if view[2]]
