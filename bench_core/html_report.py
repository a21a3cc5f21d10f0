"""``report.html``: one self-contained page per results folder (DESIGN sections 7 and 8).

Sections: the run (suite, cells, settings), claims, the contrast (tables, and per target a heatmap
of the TV lower bound of samplers × score families and TV against ε̄²), the leaderboards,
trajectories at the checkpoints, and the cells that did not finish. The numbers are those of
``leaderboard.md`` and ``contrast.md`` (``RunResults.summary``, ``leaderboard_tables``, ``contrast_tables``),
so the page and the Markdown files never disagree. CSS is inline and figures are base64 PNG, so
the file can be mailed or archived alone; every text taken from the data is HTML-escaped.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from .atomic_files import write_text_atomic
from . import report_figures as figures
from .contrast import bound_tag, contrast_tables, tv_metric_for
from .errors import ResultsError
from .leaderboard import component_label, leaderboard_tables
from .results import RESULT_COLUMNS, RunResults, load_results

MAX_TRAJECTORY_FIGURES = 4  # per target
_AXES = ("score", "initializer", "sampler")
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
.desc{color:#444;max-width:60em}nav a{margin-right:1em}
table{border-collapse:collapse;font-size:12px;margin:.6em 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.scroll{overflow-x:auto}
tr.fail td{background:#fde2e2}tr.fail td.verdict{color:#b00020;font-weight:bold}
tr.pass td.verdict{color:#11763d;font-weight:bold}
figure{margin:.8em 0;display:inline-block;vertical-align:top}figcaption{font-size:12px;color:#555}
img{max-width:100%}code{font-size:12px}.note{color:#555;font-size:13px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(frame: pd.DataFrame) -> str:
    body = frame.to_html(index=False, escape=True, na_rep="", border=0, classes="data")
    return f'<div class="scroll">{body}</div>'


def _figure(png: str, caption: str) -> str:
    return (f'<figure><img src="data:image/png;base64,{png}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _config_labels(frame: pd.DataFrame) -> pd.Series:
    """``score / initializer / sampler`` with params, computed once per configuration."""
    labels = pd.Series("", index=frame.index, dtype=object)
    columns = [c for axis in _AXES for c in (axis, f"{axis}_params")]
    for key, index in frame.groupby(columns, sort=False).groups.items():
        labels[index] = " / ".join(component_label(key[2 * i], key[2 * i + 1]) for i in range(len(_AXES)))
    return labels


def _header(run: RunResults) -> str:
    info, results = run.info, run.results
    n_cells = results["cell"].nunique()
    not_done = results[results["metric"] == "error"].drop_duplicates("cell")["status"].value_counts()
    counts = [f"{n_cells - int(not_done.sum())} done"] + [f"{n} {status}" for status, n in not_done.items()]
    fields = [("cells", f"{n_cells} ({', '.join(counts)})"),
              ("seeds", ", ".join(str(s) for s in info.get("seeds", [])) or "n/a"),
              ("n_samples", info.get("n_samples", "n/a")), ("device", info.get("device", "n/a")),
              ("dtype", info.get("dtype", "n/a")), ("ranking metric", info.get("rank_by") or "n/a"),
              ("suite file", info.get("suite_path", "n/a")), ("written at", info.get("written_at", "n/a"))]
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in fields)
    description = f'<p class="desc">{_e(info["description"])}</p>' if info.get("description") else ""
    return (f"<h1>{_e(info.get('suite', 'bench'))}</h1>{description}<table class=\"meta\">{rows}</table>"
            '<p class="note">Values are means over seeds ± the 95% Student-t half-width.</p>')


def _claims(info: dict[str, Any]) -> str:
    claims = info.get("claims") or []
    if not claims:
        return '<p class="note">This suite states no claims.</p>'
    failing = sum(not c.get("holds") for c in claims)
    rows = []
    for c in claims:
        verdict, why, line = "PASS" if c.get("holds") else "FAIL", c.get("why") or "", c.get("line", "")
        # the line repeats the verdict in front and the why at the end: both have their own column
        line = line.removeprefix(f"{verdict} ").removesuffix(f"  [{why}]" if why else "")
        rows.append(f'<tr class="{verdict.lower()}"><td class="verdict">{verdict}</td>'
                    f"<td><code>{_e(line)}</code></td><td>{_e(why)}</td></tr>")
    return (f"<p>{len(claims) - failing} of {len(claims)} claims hold.</p><div class=\"scroll\"><table>"
            f"<tr><th>result</th><th>claim</th><th>why</th></tr>{''.join(rows)}</table></div>")


def contrast_points(run: RunResults) -> pd.DataFrame:
    """One row per (target, sampler row, score family) labelled as in ``contrast_tables``.

    Returns
    -------
    Columns ``target``, ``sampler``, ``family``, ``tag`` (which TV bound), ``tv`` (mean over seeds
    of the metric ``tv_metric_for`` picks for the family) and ``eps_bar`` (mean
    ``score_error.bar_sq``); NaN where a metric was not measured.
    """
    summary = run.summary
    records = []
    for (target, tparams), block in summary.groupby(["target", "target_params"], sort=False):
        available = set(block["metric"])
        means: dict[tuple, dict[str, float]] = {}
        for r in block.itertuples(index=False):
            key = (r.score, r.score_params, r.initializer, r.initializer_params, r.sampler, r.sampler_params)
            means.setdefault(key, {})[r.metric] = r.mean
        for (score, sparams, init, iparams, sampler, pparams), values in means.items():
            metric = tv_metric_for(score, available)
            row = component_label(sampler, pparams)
            records.append({"target": component_label(target, tparams),
                            "sampler": row if init == "prior" else f"{row} from {component_label(init, iparams)}",
                            "family": component_label(score, sparams), "tag": bound_tag(metric),
                            "tv": values.get(metric, math.nan) if metric else math.nan,
                            "eps_bar": values.get("score_error.bar_sq", math.nan)})
    return pd.DataFrame(records, columns=["target", "sampler", "family", "tag", "tv", "eps_bar"])


def _contrast(run: RunResults) -> str:
    tables = contrast_tables(run)
    if not tables:
        return ""
    points = contrast_points(run)
    parts = ['<p class="note">Rows: samplers; columns: score families. Each entry: the certified TV lower bound '
             "(TV[wit]: the family's witness set; TV[modes]: mode assignment; TV[clf]: held-out classifier), "
             "Δ = TV(family) − TV(exact), ε₀² = E<sub>π</sub>‖ŝ₀ − ∇log π‖² (the norm Langevin needs small) and "
             "ε̄² = the time-averaged error over the sampler's grid (the norm the diffusion bound needs small). "
             "Heatmap: mean TV lower bound, blank where the combination was not run. Scatter: TV against ε̄².</p>"]
    for title, table in tables:
        parts += [f"<h3>{_e(title)}</h3>", _table(table)]
        block = points[points["target"] == title].drop_duplicates(["sampler", "family"])
        if block["tv"].isna().all():
            parts.append('<p class="note">No TV lower bound was measured for this target.</p>')
            continue
        families = [c for c in table.columns[1:] if c != "fragility (max Δ)"]
        tags = block.groupby("family")["tag"].first()
        matrix = block.pivot(index="sampler", columns="family", values="tv").reindex(
            index=list(table["sampler"]), columns=families)
        matrix.columns = [f"{f} · {tags.get(f, 'TV')}" for f in families]
        parts.append(_figure(figures.tv_heatmap(matrix, title), f"{title}: TV lower bound, samplers × score families"))
        scatter = block.dropna(subset=["tv", "eps_bar"])
        if not scatter.empty:
            parts.append(_figure(figures.tv_scatter(scatter, title),
                                 f"{title}: TV lower bound against ε̄² (score_error.bar_sq)"))
    return "".join(parts)


def _leaderboards(run: RunResults) -> str:
    tables = leaderboard_tables(run)
    if not tables:
        return '<p class="note">No metric values: no cell finished.</p>'
    info, parts = run.info, []
    fixed = ("rank", "score", "initializer", "sampler", "seeds")
    for title, table in tables:
        parts.append(f"<h3>{_e(title)}</h3>")
        if "rank" in table:
            metric = info.get("rank_by") or next((c for c in table.columns if c not in fixed), "")
            higher = info.get("higher_is_better", {}).get(metric.split("(", 1)[0].split(".", 1)[0], False)
            parts.append(f"<p>Ranked by <code>{_e(metric)}</code> ({'higher' if higher else 'lower'} is better).</p>")
        parts.append(_table(table))
    return "".join(parts)


def _trajectory_metrics(names: list[str], rank_by: Optional[str]) -> list[str]:
    """The ranking metric, then the certified lower bounds; the first metric if neither was recorded."""
    chosen = ([rank_by] if rank_by in names else []) + [m for m in names if m.endswith(".lower") and m != rank_by]
    return (chosen or names[:1])[:MAX_TRAJECTORY_FIGURES]


def _trajectories(run: RunResults) -> str:
    traj = run.trajectory
    if traj.empty:
        return ""
    traj = traj[(traj["status"] == "done") & np.isfinite(traj["value"].astype(float))]
    parts = []
    for (target, tparams), block in traj.groupby(["target", "target_params"], sort=False):
        title = component_label(target, tparams)
        parts.append(f"<h3>{_e(title)}</h3>")
        frame = block.assign(config=_config_labels(block), step=block["step"].astype(int))
        x = "t" if run.info.get("checkpoints_t") else "step"  # time checkpoints: samplers line up in t
        for metric in _trajectory_metrics(list(dict.fromkeys(block["metric"])), run.info.get("rank_by")):
            rows = frame[frame["metric"] == metric][[x, "value", "config"]]
            parts.append(_figure(figures.trajectory_plot(rows, metric, title, x),
                                 f"{title}: {metric} against the {'step' if x == 'step' else 'time'}"))
    return "".join(parts)


def _not_done(run: RunResults) -> str:
    results = run.results
    errors = results[results["metric"] == "error"]
    parts = []
    if errors.empty:
        parts.append(f'<p class="note">All {results["cell"].nunique()} cells finished.</p>')
    else:
        shown = errors.assign(**{axis: [component_label(n, p) for n, p in zip(errors[axis], errors[f"{axis}_params"])]
                                 for axis in ("target", *_AXES)})
        parts.append(_table(shown[["cell", "target", *_AXES, "seed", "status", "reason"]]))
    metrics = results[(results["metric"] != "error") & (results["status"] != "done")]
    if not metrics.empty:
        grouped = (metrics.groupby(["metric", "status", "reason"], sort=False).size().rename("rows").reset_index())
        parts += ['<p>Metrics not computed in finished cells:</p>', _table(grouped)]
    return "".join(parts)


def render_html(run: RunResults) -> str:
    """The whole report as one HTML document (see the module docstring)."""
    sections = [("claims", "Claims", _claims(run.info)), ("contrast", "Contrast", _contrast(run)),
                ("leaderboard", "Leaderboard", _leaderboards(run)),
                ("trajectories", "Trajectories", _trajectories(run)), ("not-done", "Cells not done", _not_done(run))]
    sections = [s for s in sections if s[2]]
    nav = "".join(f'<a href="#{anchor}">{name}</a>' for anchor, name, _ in sections)
    body = "".join(f'<h2 id="{anchor}">{name}</h2>{content}' for anchor, name, content in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>bench report: {_e(run.info.get('suite', 'bench'))}</title><style>{_CSS}</style></head>"
            f"<body>{_header(run)}<nav>{nav}</nav>{body}</body></html>\n")


def write_html(run: RunResults, path: str | Path) -> Path:
    """Write ``render_html(run)`` to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    write_text_atomic(path, render_html(run))
    return path


def write_report(results_dir: str | Path, output: Optional[str | Path] = None) -> Path:
    """``bench report DIR [-o FILE]``: load a results folder and write its report (default DIR/report.html).

    Raises
    ------
    ResultsError
        The folder is missing or not a readable results folder, or the file cannot be written.
    """
    folder = Path(results_dir)
    rerun = f"run `bench run SUITE --out {folder}` to (re)create it"
    if not folder.is_dir():
        raise ResultsError(f"results folder '{folder}' does not exist or is not a folder; {rerun}")
    try:
        run = load_results(folder)
    except (ValueError, KeyError, OSError) as exc:  # pandas parse errors and bad JSON are ValueErrors
        raise ResultsError(f"cannot read the results in '{folder}' ({type(exc).__name__}: {exc}); {rerun}") from exc
    missing = [c for c in RESULT_COLUMNS if c not in run.results.columns]
    if missing:
        raise ResultsError(f"'{folder / 'results.csv'}' lacks the column(s) {', '.join(missing)}: it was not "
                           f"written by `bench run`; {rerun}")
    target = Path(output) if output else folder / "report.html"
    try:
        return write_html(run, target)
    except OSError as exc:
        raise ResultsError(f"cannot write the report to '{target}' ({exc.strerror or exc}); "
                           "pass a writable path with -o FILE") from exc
