"""bench compare: paired intervals by hand, a sampler made worse by its step size, configurations of one
run only, --fail-on exit codes, bad input in one line, and the report's "Compared with" section."""
from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from bench_core.cli import main
from bench_core.components.discovery import build_registry
from bench_core.findings.compare_runs import compare_runs
from bench_core.pipeline import run_suite
from bench_core.results.run_results import RESULT_COLUMNS, RunResults

pytest.importorskip("pyarrow")


def table(rows):
    """rows: (sampler, seed, metric, value) of done cells of one target, score and start."""
    return pd.DataFrame([{"cell": f"{sampler}{seed}", "target": "gaussian", "score": "exact",
                          "initializer": "standard_normal", "sampler": sampler, "seed": seed,
                          "target_params": '{"dim":2}', "score_params": "{}", "initializer_params": "{}",
                          "sampler_params": "{}", "status": "done", "metric": metric, "value": value,
                          "wall_s": wall, "reason": ""} for sampler, seed, metric, value, wall in rows],
                        columns=RESULT_COLUMNS)


def run_of(rows, name):
    return RunResults(table(rows), pd.DataFrame(), {"suite": "t", "higher_is_better": {"kl": False, "acc": True}},
                      folder=Path(name))


def by_metric(comparison, sampler="a"):
    rows = comparison.rows
    return rows[rows["sampler"] == sampler].set_index("metric")


def test_paired_intervals_by_hand():
    # kl: differences 0.1, 0.2, 0.3 (mean 0.2, sd 0.1); acc: 1.0, 1.1, 0.9 (mean 1.0, sd 0.1)
    # the cells' wall times: 1, 2, 4 s in BASE, 2 s each in NEW
    base = run_of([("a", s, "kl", v, 2.0 ** s) for s, v in enumerate([1.0, 2.0, 3.0])]
                  + [("a", s, "acc", 0.5, 2.0 ** s) for s in range(3)]
                  + [("a", s, "nfe.calls", 100.0, 2.0 ** s) for s in range(3)], "base")
    new = run_of([("a", s, "kl", v, 2.0) for s, v in enumerate([1.1, 2.2, 3.3])]
                 + [("a", s, "acc", v, 2.0) for s, v in enumerate([1.5, 1.6, 1.4])]
                 + [("a", s, "nfe.calls", 200.0, 2.0) for s in range(3)], "new")
    rows = by_metric(compare_runs(base, new))
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)  # 4.3027 * 0.1 / sqrt(3) = 0.2484
    kl, acc = rows.loc["kl"], rows.loc["acc"]
    assert kl["diff"] == pytest.approx(0.2) and kl["low"] == pytest.approx(0.2 - half)
    assert kl["high"] == pytest.approx(0.2 + half) and kl["verdict"] == "unchanged"  # [-0.048, 0.448] holds 0
    assert acc["diff"] == pytest.approx(1.0) and acc["low"] == pytest.approx(1.0 - half)
    assert acc["verdict"] == "better" and acc["base"] == pytest.approx(0.5) and acc["new"] == pytest.approx(1.5)
    # cost: NEW / BASE, the geometric mean over seeds; evaluation counts are exact, so twice as many is worse
    assert rows.loc["nfe.calls", "ratio"] == pytest.approx(2.0) and rows.loc["nfe.calls", "verdict"] == "worse"
    wall = rows.loc["wall_s"]  # ratios 2, 1, 0.5: geometric mean 1
    logs = [math.log(2), 0.0, math.log(0.5)]
    wide = stats.t.ppf(0.975, 2) * pd.Series(logs).std() / math.sqrt(3)
    assert wall["ratio"] == pytest.approx(1.0) and wall["high"] == pytest.approx(math.exp(wide))
    assert wall["verdict"] == "—"


def test_one_seed_gives_no_interval_and_a_failed_seed_is_not_comparable():
    base = run_of([("a", 0, "kl", 1.0, 1.0), ("b", 0, "kl", 1.0, 1.0), ("c", 0, "kl", 1.0, 1.0),
                   ("c", 1, "kl", 1.0, 1.0), ("d", 0, "kl", math.nan, 1.0), ("e", 0, "kl", math.nan, 1.0)], "base")
    new_rows = table([("a", 0, "kl", 1.5, 1.0), ("b", 0, "kl", 1.0, 1.0), ("c", 0, "kl", 1.0, 1.0),
                      ("d", 0, "kl", math.nan, 1.0), ("e", 0, "kl", 1.0, 1.0)])
    failed = new_rows.iloc[[0]].assign(cell="c1", seed=1, status="diverged", metric="error", value=math.nan,
                                       sampler="c", reason="non-finite")
    new = RunResults(pd.concat([new_rows, failed], ignore_index=True), pd.DataFrame(), base.info, folder=Path("new"))
    comparison = compare_runs(base, new, metrics=["kl"])
    assert by_metric(comparison, "a").loc["kl", "verdict"] == "changed"
    assert by_metric(comparison, "a").loc["kl", "note"] == "1 seed: no interval"
    assert by_metric(comparison, "b").loc["kl", "verdict"] == "unchanged"  # identical
    c = by_metric(comparison, "c").loc["kl"]
    assert c["verdict"] == "not comparable" and "NEW: 1 diverged" in c["note"] and c["lost"]
    assert list(comparison.regressions(["kl"])["sampler"]) == ["c"]
    assert by_metric(comparison, "d").loc["kl", "verdict"] == "unchanged"  # NaN in both runs: nothing moved
    e = by_metric(comparison, "e").loc["kl"]
    assert e["verdict"] == "not comparable" and e["note"] == "BASE: 1 NaN" and not e["lost"]


def test_a_folder_without_directions_takes_them_from_the_installed_plugin():
    rows = [("a", s, "gaussian_kl", 0.1 * (s + 1), 1.0) for s in range(3)]
    base = RunResults(table(rows), pd.DataFrame(), {}, folder=Path("base"))
    new = RunResults(table([(a, s, m, v + 1.0, w) for a, s, m, v, w in rows]), pd.DataFrame(), {}, folder=Path("new"))
    comparison = compare_runs(base, new)
    assert by_metric(comparison).loc["gaussian_kl", "verdict"] == "worse"  # the gaussian_kl plugin: lower is better
    assert comparison.differences.lines()[0].startswith("code changed: unknown")


# ---------------------------------------------------------------- real runs

SUITE = """
[suite]
name = "steps"
seeds = [0, 1, 2]
n_samples = 1000
device = "cpu"

[[targets]]
name = "gaussian"
params = { dim = 4, mean = 1.0 }

[[samplers]]
name = "my_ula"
params = { n_steps = 300 }

[[samplers]]
name = "ula"
params = { n_steps = 300 }
grid = { step_size = [0.05, 0.1] }

[[metrics]]
name = "gaussian_kl"

[[metrics]]
name = "score_error"
"""

MY_ULA = '''
import math

import torch

from bench_core import hookimpl

STEP_SIZE = {step}  # in the code, not a param: the configuration stays the same when it changes


class MyULA:
    family = "langevin"

    def __init__(self, n_steps: int = 100):
        self.n_steps = n_steps

    def sample(self, score, x0, *, generator, callback=None):
        x = x0.clone()
        for k in range(1, self.n_steps + 1):
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = x + STEP_SIZE * score(x, 0.0) + math.sqrt(2 * STEP_SIZE) * noise
            if callback is not None:
                callback(k, k * STEP_SIZE, x)
        return x


@hookimpl
def register_samplers(register):
    register("my_ula", MyULA, description="ULA whose step size is written in its code")
'''


def _registry(folder: Path, source: str):
    """The built-ins and a plugin module as its author edited it (a file of its own)."""
    folder.mkdir(parents=True)
    path = folder / "plugin.py"
    path.write_text(source)
    name = f"plugin_{folder.name}"
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, path))
    sys.modules[name] = module  # the cell key hashes the module's file, found through sys.modules
    module.__spec__.loader.exec_module(module)
    return build_registry(extra=[module], entry_points=False)


@pytest.fixture(scope="module")
def step_runs(tmp_path_factory):
    """BASE: my_ula at step 0.05; NEW: the same suite after its code was changed to step 0.5."""
    root = tmp_path_factory.mktemp("steps")
    (root / "steps.toml").write_text(SUITE)
    for name, step in (("base", 0.05), ("new", 0.5)):
        registry = _registry(root / f"code_{name}", MY_ULA.format(step=step))
        run_suite(root / "steps.toml", out=root / name, registry=registry)
    return root / "base", root / "new"


def test_a_sampler_made_worse_is_worse_on_the_metric_that_moved_and_unchanged_elsewhere(step_runs):
    base, new = step_runs
    from bench_core.results.run_results import load_results

    comparison = compare_runs(load_results(base), load_results(new))
    rows = comparison.rows.set_index(["sampler", "sampler_params", "metric"])
    mine = rows.loc[("my_ula", '{"n_steps":300}')]
    # ULA's stationary variance 1 / (1 - h/2): 1.33 at h = 0.5, a Gaussian-fit KL of about 0.09 in d = 4
    assert mine.loc["gaussian_kl", "verdict"] == "worse" and mine.loc["gaussian_kl", "low"] > 0
    assert mine.loc["gaussian_kl", "diff"] == pytest.approx(0.084, abs=0.01)
    assert (mine.drop(index=["gaussian_kl", "wall_s"])["verdict"] == "unchanged").all(), mine
    assert mine.loc["nfe.calls", "ratio"] == 1.0
    others = comparison.rows[comparison.rows["sampler"] == "ula"]
    assert len(others) and (others[others["metric"] != "wall_s"]["verdict"] == "unchanged").all()
    differences = comparison.differences
    assert differences.code_changed == ["sampler my_ula"] and "sampler ula" in differences.code_same
    assert differences.new_keys == 3 and differences.shared_cells == 9  # my_ula's 3 cells have new keys


def test_the_readme_example_gives_the_numbers_it_shows(tmp_path):
    """README, "Comparing runs": tempered_ula's default step 0.01 -> 0.2 makes KL worse, the rest unchanged."""
    from bench_core.report.compare_text import comparison_table
    from bench_core.results.run_results import load_results

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = lambda lang: re.findall(rf"```{lang}\n(.*?)```", readme, flags=re.S)  # noqa: E731
    sampler = next(b for b in blocks("python") if "class TemperedULA" in b)
    (tmp_path / "tempered.toml").write_text(next(b for b in blocks("toml") if 'name = "tempered"' in b))
    edited = sampler.replace("step_size: float = 0.01", "step_size: float = 0.2")
    for name, source in (("before", sampler), ("after", edited)):
        registry = _registry(tmp_path / f"code_{name}", source)
        run_suite(tmp_path / "tempered.toml", out=tmp_path / name, registry=registry)
    comparison = compare_runs(load_results(tmp_path / "before"), load_results(tmp_path / "after"))
    table = comparison_table(comparison.rows)
    shown = next(b for b in blocks("text") if "tempered compared with tempered" in b)
    for row in table[table["metric"] != "wall_s"].to_dict("records"):  # wall time is the machine's
        line = "  ".join(str(row[c]) for c in ("metric", "seeds", "BASE", "NEW"))
        assert re.search(r"\s+".join(map(re.escape, line.split())), shown), line
        assert f"{row['NEW − BASE [95%]']}" in shown and row["verdict"] in shown
    assert list(table[table["verdict"] == "worse"]["metric"]) == ["gaussian_kl"]
    assert comparison.differences.code_changed == ["sampler tempered_ula"]


def test_fail_on_exit_codes(step_runs, capsys, tmp_path):
    base, new = map(str, step_runs)
    assert main(["compare", base, new, "--width", "100"]) == 0
    assert main(["compare", base, new, "--fail-on", "gaussian_kl", "--markdown", str(tmp_path / "c.md")]) == 1
    out = capsys.readouterr().out
    assert "FAIL gaussian_kl got worse: gaussian(dim=4, mean=1.0) / exact / standard_normal / my_ula" in out
    assert "code changed: sampler my_ula" in out and "| worse |" not in out  # the terminal's tables are not Markdown
    assert re.search(r"\| gaussian_kl +\|.*\| worse +\|", (tmp_path / "c.md").read_text())
    assert main(["compare", base, new, "--fail-on", "score_error,nfe.calls"]) == 0
    assert main(["compare", base, new, "--fail-on", "gaussian_kl", "--only", "sampler=ula"]) == 0
    assert main(["compare", new, base, "--fail-on", "gaussian_kl"]) == 0  # the other way round it got better
    assert "--fail-on gaussian_kl: none got worse" in capsys.readouterr().out


def test_configurations_of_one_run_only_are_listed(tmp_path, capsys):
    for name, steps in (("base", "[0.05, 0.1]"), ("new", "[0.1, 0.2]")):
        (tmp_path / f"{name}.toml").write_text(textwrap.dedent(f"""
            [suite]
            name = "{name}"
            seeds = [0, 1]
            n_samples = 300
            [[targets]]
            name = "gaussian"
            params = {{ dim = 2 }}
            [[samplers]]
            name = "ula"
            params = {{ n_steps = 50 }}
            grid = {{ step_size = {steps} }}
            [[metrics]]
            name = "mean_error"
            """))
        run_suite(tmp_path / f"{name}.toml", out=tmp_path / name)
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "new"), "--metric", "mean_error"]) == 0
    out = capsys.readouterr().out
    assert "## Only in BASE (1 configurations)" in out and "## Only in NEW (1 configurations)" in out
    only_base = out[out.index("## Only in BASE"):out.index("## Only in NEW")]
    assert "step_size=0.05" in only_base and "step_size=0.2" in out[out.index("## Only in NEW"):]
    assert "1 comparisons over 1 configurations in both runs: 1 unchanged." in out


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error: "), err
    return err[0]


def test_bad_input_is_one_line_and_exit_2(step_runs, tmp_path, capsys):
    base, new = map(str, step_runs)
    assert main(["compare", base, str(tmp_path)]) == 2
    assert "is not a bench results folder" in _error(capsys)
    assert main(["compare", base, str(tmp_path / "missing")]) == 2
    assert "does not exist" in _error(capsys)
    assert main(["compare", base, new, "--metric", "gausian_kl"]) == 2
    assert "--metric 'gausian_kl' names no metric of either run (did you mean 'gaussian_kl'?)" in _error(capsys)
    assert main(["compare", base, new, "--fail-on", "sinkhorn"]) == 2
    assert "--fail-on 'sinkhorn'" in _error(capsys)
    assert main(["compare", base, new, "--fail-on", "wall_s"]) == 2
    assert "no verdict" in _error(capsys)
    assert main(["compare", base, new, "--only", "sampler=ddpm"]) == 2
    assert "no configuration in common" in _error(capsys)
    other = tmp_path / "other"
    other.mkdir()
    rows = pd.read_parquet(Path(new) / "results.parquet").assign(target="gmm")
    rows.to_parquet(other / "results.parquet")
    (other / "run.json").write_text(json.dumps({"suite": "other"}))
    assert main(["compare", base, str(other)]) == 2
    line = _error(capsys)
    assert "nothing to compare" in line and "'steps', 3 configurations" in line and "'other', 3)" in line
    (other / "results.parquet").write_bytes(b"PAR1 truncated")
    assert main(["compare", base, str(other)]) == 2
    assert "results.parquet' is damaged" in _error(capsys)
    (other / "results.parquet").unlink()
    (other / "results.csv").write_text("not,a\nresults,file\n")
    assert main(["compare", str(other), new]) == 2
    assert "cannot read the results in" in _error(capsys)


def test_a_folder_copied_elsewhere_compares_from_its_parquet_and_run_json(step_runs, tmp_path, capsys):
    base, new = step_runs
    for name in ("results.parquet", "run.json"):
        (tmp_path / name).write_bytes((base / name).read_bytes())
    assert main(["compare", str(tmp_path), str(new), "--fail-on", "gaussian_kl"]) == 1
    assert "FAIL gaussian_kl got worse" in capsys.readouterr().out


def test_report_against_base_adds_the_compared_section(step_runs, tmp_path, capsys):
    base, new = step_runs
    page = tmp_path / "report.html"
    assert main(["report", str(new), "--against", str(base), "-o", str(page)]) == 0
    html = page.read_text()
    section = html[html.index('id="compared"'):html.index('id="leaderboard"')]
    assert f"Compared with {base}" in html and "code changed: sampler my_ula" in section
    assert "What changed (" in section and "worse" in section and "my_ula" in section


def test_report_against_draws_both_fragility_curves(fragility_run, tmp_path):
    page = tmp_path / "report.html"
    assert main(["report", str(fragility_run), "--against", str(fragility_run), "-o", str(page)]) == 0
    html = page.read_text()
    section = html[html.index('id="compared"'):html.index('id="contrast"')]
    assert "Fragility curve of both runs" in section and "data:image/png;base64," in section
    assert "Nothing moved" in section


def test_runs_are_deterministic_so_a_second_run_compares_unchanged(tmp_path, capsys):
    """Common random numbers and one torch thread per cell: the smoke suite run twice is bit-identical,
    which is what lets .ci/run hold a fresh run to the committed baseline."""
    suite = Path(__file__).resolve().parents[1] / "suites" / "smoke.toml"
    for name in ("first", "second"):
        run_suite(suite, out=tmp_path / name)
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    assert main(["compare", first, second, "--fail-on", "gaussian_kl,mean_error"]) == 0
    out = capsys.readouterr().out
    assert "20 comparisons over 4 configurations in both runs: 16 unchanged, 4 —." in out
    assert "code changed: none" in out and "cell keys: 0 of 8 shared cells have new keys" in out


def test_the_committed_baselines_cover_their_suites():
    """tests/baselines/<suite> holds the results .ci/run compares a fresh run with: as many cells as the suite
    has now (their keys change with any edit of the code they hash; their numbers need not), with the code
    digests and directions of run.json."""
    from bench_core.pipeline import plan_suite
    from bench_core.results.run_results import load_results

    root = Path(__file__).resolve().parents[1]
    for name in ("smoke", "contrast_small"):
        baseline = load_results(root / "tests" / "baselines" / name)
        assert baseline.info["suite"] == name and baseline.info["code"] and baseline.info["higher_is_better"]
        plan = plan_suite(root / "suites" / f"{name}.toml")
        assert baseline.results["cell"].nunique() == len(plan.cells), f"update tests/baselines/{name}"
        assert sorted(set(baseline.results["seed"])) == plan.suite.seeds
