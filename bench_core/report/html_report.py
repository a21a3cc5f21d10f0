"""``report.html``: one self-contained page per results folder (docs/architecture.md, Result files).

From the top: the headline (:mod:`.html_headline`: the fragility curve, its sentence, the claims),
the contrast (:mod:`.html_contrast`), the leaderboards (styled: best per column, rows with seeds not
done marked), each suite's own views (:mod:`.report_views`), samples of the claimed cells
(:mod:`.sample_views`), trajectories at the checkpoints, the cells that did not finish, and the run's
settings and provenance. The numbers are those of ``leaderboard.md`` and ``contrast.md``
(``RunResults.summary``, ``leaderboard_tables``, ``contrast_tables``), so the page and the Markdown
files never disagree. CSS is inline and figures are base64 PNG, so the file can be mailed or
archived alone; every text taken from the data is HTML-escaped.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from bench_core.report import figures
from bench_core.report import sample_figures
from bench_core.base.atomic_files import write_text_atomic
from bench_core.base.errors import ResultsError
from bench_core.findings.compare_runs import Comparison, compare_runs
from bench_core.report.html_compare import compare_section
from bench_core.report.html_contrast import contrast_section
from bench_core.report.html_headline import headline_section
from bench_core.report.html_pictures import pictured, pictures_section
from bench_core.report.html_searched import searched_section
from bench_core.report.html_parts import escape as _e, figure as _figure, table as _table
from bench_core.findings.labels import component_label, config_label
from bench_core.findings.leaderboard import higher_is_better, leaderboard_tables
from bench_core.report.suite_views import suite_views
from bench_core.results.run_results import RunResults, open_results, status_counts

MAX_TRAJECTORY_FIGURES = 4  # per target
MAX_SAMPLE_VIEWS = 12
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
.lead{font-size:15px;max-width:70em;margin:.3em 0}figure.headline{display:block;margin:.4em 0}
.claims-count.fail{color:#b00020}.claims-count.pass{color:#11763d}details summary{cursor:pointer;color:#333}
"""


def _config_labels(frame: pd.DataFrame) -> pd.Series:
    """``score / initializer / sampler`` with params (:func:`config_label`), once per configuration."""
    labels = pd.Series("", index=frame.index, dtype=object)
    columns = [c for axis in _AXES for c in (axis, f"{axis}_params")]
    for key, index in frame.groupby(columns, sort=False).groups.items():
        labels[index] = config_label(dict(zip(columns, key)), _AXES)
    return labels


def _title(run: RunResults) -> str:
    info = run.info
    description = f'<p class="desc">{_e(info["description"])}</p>' if info.get("description") else ""
    return f"<h1>{_e(info.get('suite', 'bench'))}</h1>{description}"


def _details(run: RunResults) -> str:
    """The run's settings and its provenance: versions, commit, command, machine, time per sampler."""
    info, results = run.info, run.results
    counts = status_counts(results)
    n_cells = sum(counts.values())
    prov = info.get("provenance") or {}
    versions = ", ".join(f"{k} {v}" for k, v in (prov.get("versions") or {}).items())
    per_cell = results.drop_duplicates("cell")
    cell_seconds = float(per_cell["wall_s"].sum()) if "wall_s" in per_cell else math.nan
    elapsed = prov.get("elapsed_s")
    fields = [("cells", f"{n_cells} ({', '.join(f'{n} {status}' for status, n in counts.items())})"),
              ("seeds", ", ".join(str(s) for s in info.get("seeds", [])) or "n/a"),
              ("n_samples", info.get("n_samples", "n/a")), ("device", info.get("device", "n/a")),
              ("dtype", info.get("dtype", "n/a")), ("ranking metric", info.get("rank_by") or "n/a"),
              ("suite file", info.get("suite_path", "n/a")), ("written at", info.get("written_at", "n/a")),
              ("command", prov.get("command", "n/a")),
              ("executor", f"{prov['executor']} ({prov.get('workers', 1)} workers)" if prov.get("executor") else "n/a"),
              ("git commit", prov.get("git_commit") or "n/a (not a git checkout)"),
              ("versions", f"{versions}; Python {prov.get('python', '?')}" if versions else "n/a"),
              ("machine", f"{prov.get('platform', 'n/a')} ({prov.get('machine', '')})" if prov else "n/a"),
              ("time", (f"{elapsed:.1f} s for this invocation; " if isinstance(elapsed, (int, float)) else "")
               + f"{cell_seconds:.1f} s in the cells' own clocks (all invocations)")]
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in fields)
    by_sampler = (per_cell.assign(label=[component_label(n, q) for n, q in zip(per_cell["sampler"], per_cell["sampler_params"])])
                  .groupby("label", sort=False)["wall_s"].agg(cells="count", total_s="sum", mean_s="mean").reset_index()
                  .rename(columns={"label": "sampler"}).round({"total_s": 1, "mean_s": 3}))
    return (f'<table class="meta">{rows}</table><p>Wall time per sampler (cells run in this folder):</p>'
            f"{_table(by_sampler)}")


def _styled_leaderboard(table: pd.DataFrame, directions: dict[str, bool], uid: str = "lb") -> str:
    """A leaderboard as a pandas-styled table: the best mean of each metric column highlighted (by the
    metric's direction), rows with seeds that did not finish marked."""
    shown = [c for c in table.columns if not c.startswith("_")]
    styles = pd.DataFrame("", index=table.index, columns=shown)
    for column in shown:
        means = table.get(f"_{column}")
        if means is None or means.notna().sum() < 2:
            continue
        higher = higher_is_better(column, directions)
        best = means.max() if higher else means.min()
        styles.loc[means == best, column] = "background-color:#d7f0df;font-weight:bold"
    if "not done" in shown:
        marked = table["not done"].astype(bool)
        styles.loc[marked, "not done"] = "background-color:#fde2e2;color:#b00020;font-weight:bold"
    # every text comes from the data: escaped, cells and column headers alike
    styler = (table[shown].style.apply(lambda _: styles, axis=None).format(escape="html")
              .format_index(escape="html", axis=1).hide(axis="index").set_uuid(uid)  # fixed ids: same page twice
              .set_table_attributes('class="leaderboard"'))
    return f'<div class="scroll">{styler.to_html()}</div>'


def _leaderboards(run: RunResults) -> str:
    tables = leaderboard_tables(run, keep_means=True)
    if not tables:
        return '<p class="note">No metric values: no cell finished.</p>'
    info, parts = run.info, ['<p class="note">Mean ± 95% interval over seeds; the best mean of each column is '
                             "highlighted (lower is better unless the metric says otherwise); <i>not done</i> counts "
                             "the seeds of a row that diverged or failed (its means are over the others).</p>"]
    fixed = ("rank", "score", "initializer", "sampler", "seeds", "not done")
    directions = info.get("higher_is_better", {})
    for i, (title, table) in enumerate(tables):
        parts.append(f"<h3>{_e(title)}</h3>")
        if "rank" in table:
            metric = info.get("rank_by") or next((c for c in table.columns if c not in fixed and not c.startswith("_")), "")
            higher = higher_is_better(metric, directions)
            parts.append(f"<p>Ranked by <code>{_e(metric)}</code> ({'higher' if higher else 'lower'} is better).</p>")
        parts.append(_styled_leaderboard(table, directions, f"lb{i}"))
    return "".join(parts)


def _sample_views(run: RunResults) -> str:
    """For the cells a claim names (first seed): radial histogram and 2-D projection against the target."""
    views = {k: v for k, v in run.views.items() if not pictured(v)}  # data-set pictures have their own section
    if not views:
        return ""
    cells = run.results.drop_duplicates("cell").set_index("cell")
    parts = ['<p class="note">Where the samples of the cells the claims name lie (first seed, '
             f"{MAX_SAMPLE_VIEWS} at most): left, the distance to the target's mean c of the samples against as many "
             "reference draws; right, both projected on the direction u of c (of the samples' mean shift when "
             "c = 0) and an orthogonal axis v. Grey: the target.</p>"]
    for key in [k for k in cells.index if k in views][:MAX_SAMPLE_VIEWS]:
        r = cells.loc[key]
        title = config_label(r)
        parts.append(_figure(sample_figures.sample_view_figure(views[key], title), title))
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


def render_html(run: RunResults, out_dir: Optional[Path] = None, comparison: Optional[Comparison] = None) -> str:
    """The whole report as one HTML document (see the module docstring); ``out_dir``: the results
    folder, when ``run.folder`` does not name it (the suite views read the loss curves kept there);
    ``comparison``: this run against an earlier one, shown after the headline."""
    compared = ([("compared", f"Compared with {comparison.base.folder}", compare_section(comparison))]
                if comparison is not None else [])
    sections = [*compared, ("contrast", "Contrast", contrast_section(run)),
                ("leaderboard", "Leaderboard", _leaderboards(run)),
                *suite_views(run, out_dir), ("searched", "What the search found", searched_section(run)),
                ("pictures", "Pictures of the data", pictures_section(run)),
                ("samples", "Samples of the claimed cells", _sample_views(run)),
                ("trajectories", "Trajectories", _trajectories(run)),
                ("not-done", "Cells not done", _not_done(run)), ("provenance", "Run details and provenance", _details(run))]
    sections = [s for s in sections if s[2]]
    nav = "".join(f'<a href="#{anchor}">{_e(name)}</a>' for anchor, name, _ in sections)
    body = "".join(f'<h2 id="{anchor}">{_e(name)}</h2>{content}' for anchor, name, content in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>bench report: {_e(run.info.get('suite', 'bench'))}</title><style>{_CSS}</style></head>"
            f'<body>{_title(run)}<section id="headline">{headline_section(run)}</section><nav>{nav}</nav>'
            '<p class="note">Values are means over seeds ± the 95% Student-t half-width.</p>'
            f"{body}</body></html>\n")


def write_html(run: RunResults, path: str | Path, comparison: Optional[Comparison] = None) -> Path:
    """Write ``render_html(run)`` to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    write_text_atomic(path, render_html(run, path.parent, comparison))
    return path


def write_report(results_dir: str | Path, output: Optional[str | Path] = None,
                 against: Optional[str | Path] = None) -> Path:
    """``bench report DIR [-o FILE] [--against BASE]``: load a results folder and write its report (default
    DIR/report.html); with ``against``, a section compares it with that earlier run (:mod:`.html_compare`).

    Raises
    ------
    ResultsError
        A folder is missing or not a readable results folder, or the file cannot be written.
    """
    folder = Path(results_dir)
    run = open_results(folder)
    comparison = compare_runs(open_results(against), run) if against is not None else None
    target = Path(output) if output else folder / "report.html"
    try:
        return write_html(run, target, comparison)
    except OSError as exc:
        raise ResultsError(f"cannot write the report to '{target}' ({exc.strerror or exc}); "
                           "pass a writable path with -o FILE") from exc
