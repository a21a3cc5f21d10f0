"""Per-suite report views (bench_core.report.suite_views): each view appears exactly when its data is in the run,
with the paper's numbers next to bench's, valid PNG figures and escaped text."""
from __future__ import annotations

import base64
import hashlib
import html
import re
import struct
import textwrap

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from bench_core.report.suite_views import PAPER_TABLE1, suite_views
from bench_core.results.run_results import RESULT_COLUMNS, TRAJECTORY_COLUMNS, RunResults, load_results
from bench_core.base.seeding import canonical_json
from bench_core.pipeline import run_suite

PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
ULA = {"n_steps": 1000, "step_size": 0.0025}


def _row(metric, value, *, seed=0, target="gaussian", tp=None, score="exact", sp=None, init="standard_normal",
         ip=None, sampler="ula", pp=None, **extra):
    spec = [target, canonical_json(tp or {}), score, canonical_json(sp or {}), init, canonical_json(ip or {}),
            sampler, canonical_json(ULA if pp is None else pp)]
    cell = hashlib.sha256(canonical_json([*spec, seed]).encode()).hexdigest()[:16]
    return {"cell": cell, "target": spec[0], "score": spec[2], "initializer": spec[4], "sampler": spec[6],
            "seed": seed, "target_params": spec[1], "score_params": spec[3], "initializer_params": spec[5],
            "sampler_params": spec[7], "status": "done", "metric": metric, "value": value, "wall_s": 0.1,
            "reason": "", **extra}


def _run(rows, trajectory=(), **info):
    traj = pd.DataFrame(list(trajectory), columns=TRAJECTORY_COLUMNS)
    return RunResults(pd.DataFrame(rows, columns=RESULT_COLUMNS), traj, {"n_samples": 5000, **info})


def _views(run, out_dir=None):
    return {anchor: body for anchor, _, body in suite_views(run, out_dir)}


def _cells(body):
    """The <td> texts of each table row, unescaped."""
    return [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def _assert_pngs(body, count):
    images = PNG.findall(body)
    assert len(images) == count
    for image in images:
        data = base64.b64decode(image, validate=True)
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        assert width > 100 and height > 100 and len(data) > 2000
    assert plt.get_fignums() == []  # drawn off pyplot: nothing left open


def _table1_rows(kl_exact, kl_trap, step=0.0025):
    rows = []
    for a, values in kl_exact.items():
        rows += [_row("gaussian_kl", v, seed=s, tp={"dim": 50, "mean": a}, pp={"step_size": step})
                 for s, v in enumerate(values)]
    for a, values in kl_trap.items():
        rows += [_row("gaussian_kl", v, seed=s, tp={"dim": 50, "mean": a}, score="ball_trap", sp={"radius": 1.0},
                      pp={"step_size": step}) for s, v in enumerate(values)]
    return rows


def test_table1_puts_the_papers_numbers_next_to_benchs_and_their_difference():
    run = _run(_table1_rows({1.0: [0.30, 0.32], 3.0: [1.67, 1.69]}, {1.0: [24.5, 26.5]}), n_samples=1000)
    views = _views(run)
    assert list(views) == ["view-table1"]
    rows = {r[0]: r for r in _cells(views["view-table1"])}
    assert sorted(rows) == ["1", "3"]  # only the a values of the run
    ci = run.summary[(run.summary["score"] == "exact") & (run.summary["metric"] == "gaussian_kl")]["ci95"].iloc[0]
    # a, ||mu||, seeds, paper (true score), bench exact, difference, paper (s_hat), bench ball trap, difference
    assert rows["1"] == ["1", "7.07", "2", "0.308", f"0.31 ± {ci:.2g}", "+0.002", "25", "25.5 ± 13", "+0.5"]
    assert rows["3"][3:6] == ["1.66", f"1.68 ± {ci:.2g}", "+0.02"] and rows["3"][6:] == ["225", "not run", "not run"]
    assert (PAPER_TABLE1[1][1], PAPER_TABLE1[3][2]) == (0.308, 225.0)
    assert "d(d+3)/(4n) is 0.662 at this run's n_samples = 1000" in views["view-table1"]


@pytest.mark.parametrize("change", ["step", "dim", "metric"])
def test_table1_is_absent_outside_the_papers_protocol(change):
    rows = _table1_rows({1.0: [0.3, 0.31]}, {}, step=0.01 if change == "step" else 0.0025)
    if change == "dim":
        rows = [{**r, "target_params": canonical_json({"dim": 10, "mean": 1.0})} for r in rows]
    if change == "metric":
        rows = [{**r, "metric": "mean_error"} for r in rows]
    assert suite_views(_run(rows)) == []


def _theorem7_rows(dims=(10, 25), score="memorized"):
    tv = {("train", 10): [0.9, 0.95], ("train", 25): [0.99, 1.0], ("fresh", 10): [0.3, 0.2], ("fresh", 25): [0, 0]}
    return [_row("tv_witness.lower", v if sc != "exact" else 0.0, seed=s, tp={"dim": d, "mean": 0.0}, score=sc,
                 init=init, ip={"distinct": 30}) for sc in (score, "exact") for (init, d), vs in tv.items()
            if d in dims for s, v in enumerate(vs)]


def test_theorem7_draws_tv_against_dimension_per_start_with_a_table():
    body = _views(_run(_theorem7_rows()))["view-theorem7"]
    _assert_pngs(body, 1)
    assert "gaussian(mean=0.0), ula(n_steps=1000, step_size=0.0025)" in html.unescape(body)
    rows = {(r[0], r[1]): r[2:] for r in _cells(body)}
    assert rows[("memorized", "train")][0].startswith("0.925 ± ") and rows[("memorized", "fresh")][1] == "0 ± 0"
    assert set(rows) == {(s, i) for s in ("memorized", "exact") for i in ("train", "fresh")}


@pytest.mark.parametrize("rows", [_theorem7_rows(dims=(10,)), _theorem7_rows(score="ball_trap")],
                         ids=["one-dimension", "no-memorized-score"])
def test_theorem7_is_absent_without_its_data(rows):
    assert "view-theorem7" not in _views(_run(rows))


def _theorem11_run(score="cone_trap"):
    pp = {"n_steps": 1000, "step_size": 0.01}
    rows, traj = [], []
    for sc, curve in ((score, {0: 0.0, 10: 0.0, 100: 0.1, 1000: 0.4}), ("exact", dict.fromkeys((0, 10, 100, 1000), 0))):
        for seed in (0, 1):
            final = _row("tv_witness.lower", curve[1000] + 0.01 * seed, seed=seed, tp={"dim": 2}, score=sc, pp=pp)
            rows.append(final)
            traj += [{**final, "value": v + 0.01 * seed, "step": k, "t": 0.01 * k} for k, v in curve.items()]
    return _run(rows, traj)


def test_theorem11_draws_tv_against_the_horizon():
    body = _views(_theorem11_run())["view-theorem11"]
    _assert_pngs(body, 1)
    steps = {r[0]: r[1:] for r in _cells(body)}
    assert list(steps) == ["10", "100", "1000"]  # step 0 has no place on a log axis
    assert steps["1000"][0].startswith("0.405 ± ") and steps["1000"][1].startswith("0.005 ± ")


def test_theorem11_is_absent_without_a_cone_trap():
    assert "view-theorem11" not in _views(_theorem11_run(score="ball_trap"))


def _section4_rows(tag="benign", learned=True):
    rows = []
    configs = [("exact", {}, 0.1, 1.0)] + [("empirical", {"tag": t}, 5.0, 0.09) for t in (tag, "other")] * learned
    for score, sp, kl, ratio in configs:
        for init in ("standard_normal", "fresh", "train"):
            for seed in (0, 1):
                common = dict(seed=seed, tp={"dim": 20, "note": tag}, score=score, sp=sp, init=init)
                rows += [_row("gaussian_kl", kl + seed, **common), _row("sinkhorn.value", 8 + kl, **common),
                         _row("sinkhorn.null", 8.2, **common), _row("nearest_train.ratio", ratio, **common)]
    return rows


def test_section4_shows_metrics_per_start_and_escapes_hostile_labels():
    hostile = "<script>alert('x')</script> & $\\frac$"  # in the target's label and one score's
    body = _views(_run(_section4_rows(hostile)))["view-section4"]
    _assert_pngs(body, 1)  # the grouped bars; no epochs grid, no network: no curves
    escaped = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; $\\frac$"
    assert "<script" not in body and f"<h3>gaussian(dim=20, note={escaped})</h3>" in body
    rows = {(r[0], r[1]): r[2:] for r in _cells(body)}
    # gaussian_kl, sinkhorn.value, nearest_train.ratio
    assert rows[(f"empirical({hostile}) · ula", "train")] == ["5.5 ± 6.4", "13 ± 0", "0.09 ± 0"]  # a string param shows its value alone (bench_core.findings.labels)
    assert rows[("exact · ula", "fresh")][2] == "1 ± 0"


def test_section4_is_absent_without_a_learned_score():
    assert suite_views(_run(_section4_rows(learned=False))) == []


SECTION4_SUITE = """
[suite]
name = "views_s4"
seeds = [0, 1]
n_samples = 120
device = "cpu"

[data]
n_train = 40

[[targets]]
name = "gaussian"
params = { dim = 4 }

[[scores]]
name = "ddpm_mlp"
params = { width = 16, depth = 1, levels = 100 }
grid = { epochs = [3, 6] }

[[initializers]]
name = "standard_normal"

[[initializers]]
name = "train"
params = { distinct = 5 }

[[samplers]]
name = "ula"
params = { n_steps = 20 }

[[metrics]]
name = "nearest_train"

[[metrics]]
name = "gaussian_kl"
"""


def test_a_real_section4_run_gets_the_memorization_and_loss_curves(tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text(textwrap.dedent(SECTION4_SUITE))
    run_suite(suite, out=tmp_path / "out")
    run = load_results(tmp_path / "out")
    body = _views(run, tmp_path / "out")["view-section4"]
    _assert_pngs(body, 3)  # bars, memorization curve, loss curves kept in the results folder
    assert "memorization curve" in body and "training loss" in body and "not shown" not in body
    suite.rename(tmp_path / "moved.toml")  # the report reads only the results folder
    _assert_pngs(_views(run, tmp_path / "out")["view-section4"], 3)


TABLE1_SUITE = """
[suite]
name = "views_t1"
seeds = [0, 1]
n_samples = 300
device = "cpu"

[data]
n_train = 10

[[targets]]
name = "gaussian"
params = { dim = 50 }
grid = { mean = [1.0, 3.0] }

[[scores]]
name = "exact"

[[scores]]
name = "ball_trap"

[[samplers]]
name = "ula"

[[metrics]]
name = "gaussian_kl"
"""


def test_a_real_table1_shaped_run_gets_the_table(tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text(textwrap.dedent(TABLE1_SUITE))
    run_suite(suite, out=tmp_path / "out")
    run = load_results(tmp_path / "out")
    views = suite_views(run)
    assert [v[:2] for v in views] == [("view-table1", "Table 1: the paper against bench")]
    rows = {r[0]: r for r in _cells(views[0][2])}
    s = run.summary[run.summary["metric"] == "gaussian_kl"].set_index(["score", "target_params"])
    for a in ("1", "3"):
        exact = s.loc[("exact", canonical_json({"dim": 50, "mean": float(a)}))]
        assert rows[a][4] == f"{exact['mean']:.4g} ± {exact['ci95']:.2g}"
        assert rows[a][5] == f"{exact['mean'] - PAPER_TABLE1[int(a)][1]:+.3g}"
    assert rows["3"][6] == "225" and float(rows["3"][7].split(" ")[0]) > 180  # trapped: KL ~ 25 a^2
