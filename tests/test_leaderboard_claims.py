"""Leaderboard statistics (mean, std, t-interval, ranking) and claim evaluation on known tables."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench_core.findings.claims import evaluate_claims
from bench_core.cli import main
from bench_core.findings.leaderboard import leaderboard_tables
from bench_core.results.run_results import summarize
from bench_core.results.run_results import RESULT_COLUMNS, RunResults
from bench_core.suite.parsed import Claim


def table(rows):
    """rows: (sampler, step, seed, metric, value, status)."""
    out = []
    for sampler, step, seed, metric, value, status in rows:
        out.append({"cell": f"{sampler}{step}{seed}", "target": "gaussian", "score": "exact",
                    "initializer": "standard_normal", "sampler": sampler, "seed": seed,
                    "target_params": json.dumps({"dim": 2}), "score_params": "{}", "initializer_params": "{}",
                    "sampler_params": json.dumps({"step_size": step}), "status": status, "metric": metric,
                    "value": value, "wall_s": 0.1, "reason": ""})
    return pd.DataFrame(out, columns=RESULT_COLUMNS)


VALUES_A = [0.10, 0.14, 0.12]
VALUES_B = [0.30, 0.20, 0.40]
RESULTS = table([("ula", 0.01, s, "kl", v, "done") for s, v in enumerate(VALUES_A)]
                + [("ula", 0.1, s, "kl", v, "done") for s, v in enumerate(VALUES_B)]
                + [("ula", 0.1, 3, "error", math.nan, "diverged")])


def test_summary_mean_std_and_t_interval():
    summary = summarize(RESULTS).set_index("sampler_params")
    a = summary.loc[json.dumps({"step_size": 0.01})]
    assert a["n"] == 3
    assert a["mean"] == pytest.approx(np.mean(VALUES_A))
    assert a["std"] == pytest.approx(np.std(VALUES_A, ddof=1))
    # 95% interval half-width: t_{0.975, n-1} * s / sqrt(n), t_{0.975,2} = 4.303
    assert a["ci95"] == pytest.approx(stats.t.ppf(0.975, 2) * np.std(VALUES_A, ddof=1) / math.sqrt(3))
    assert stats.t.ppf(0.975, 2) == pytest.approx(4.3027, abs=1e-4)


def test_ranking_respects_direction():
    low_first = leaderboard_tables(RunResults(RESULTS, pd.DataFrame(), {"higher_is_better": {"kl": False}}))
    _, t = low_first[0]
    assert list(t["sampler"]) == ["ula(step_size=0.01)", "ula(step_size=0.1)"] and list(t["rank"]) == [1, 2]
    high_first = leaderboard_tables(RunResults(RESULTS, pd.DataFrame(), {"higher_is_better": {"kl": True}}))
    assert list(high_first[0][1]["sampler"]) == ["ula(step_size=0.1)", "ula(step_size=0.01)"]


@pytest.mark.parametrize("stat, op, value, holds, expected", [
    ("mean", "<=", 0.3, True, [np.mean(VALUES_A), np.mean(VALUES_B)]),
    ("max", "<=", 0.3, False, [max(VALUES_A), max(VALUES_B)]),
    ("min", ">=", 0.1, True, [min(VALUES_A), min(VALUES_B)]),
    ("median", "<", 0.3, False, [np.median(VALUES_A), np.median(VALUES_B)]),
])
def test_claim_stats_per_configuration(stat, op, value, holds, expected):
    outcome, = evaluate_claims([Claim("kl", op, value, (("sampler", "ula"),), stat)], RESULTS)
    assert outcome.holds is holds
    assert [v for _, v in outcome.values] == pytest.approx(expected)


def test_claim_selecting_by_param_and_missing_metric():
    outcome, = evaluate_claims([Claim("kl", "<=", 0.125, (("sampler.step_size", 0.01),), "mean")], RESULTS)
    assert outcome.holds and outcome.values[0][1] == pytest.approx(0.12)
    outcome, = evaluate_claims([Claim("kl", "<=", 1.0, (("seed", 3),), "mean")], RESULTS)
    assert not outcome.holds  # the only cell of seed 3 diverged: no value, the claim cannot hold
    assert math.isnan(outcome.values[0][1])


def test_bench_show_prints_the_leaderboard(write_suite, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(write_suite()), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "# t leaderboard" in shown and "mean_error" in shown and "Ranked by `mean_error`" in shown
    # the same leaderboard as leaderboard.md, as terminal tables: every entry of its tables is shown
    cells = {c.strip() for line in (out / "leaderboard.md").read_text().splitlines() if line.startswith("|")
             for c in line.strip("|").split("|") if c.strip() and not set(c.strip()) <= set("-:")}
    flat = " ".join(shown.split())
    assert all(" ".join(c.split()) in flat for c in cells if len(c) <= 12), cells
    assert main(["show", str(tmp_path / "missing")]) == 2
    assert "no results.csv" in capsys.readouterr().err


def test_progress_bar_on_a_terminal_and_lines_otherwise():
    import io

    from bench_core.run.progress import Progress

    plain = io.StringIO()
    p = Progress(2, stream=plain, live=False)
    p.start_cell("cell A", 10)
    p.on_step(5)
    p.finish_cell("cell A", "done", 1.5)
    p.finish_cell("cell B", "diverged", 0.5, "non-finite particles at step 3")
    assert plain.getvalue().splitlines() == ["[1/2] done 1.5s cell A",
                                             "[2/2] diverged 0.5s cell B: non-finite particles at step 3"]
    live = io.StringIO()
    p = Progress(2, stream=live, live=True)
    p.start_cell("cell A", 10)
    p.on_step(5)
    p.finish_cell("cell A", "done", 1.5)
    p.close()
    text = live.getvalue()
    assert "\r" in text and "0/2 cells" in text and "1/2 cells" in text and "cell A" in text


def test_claim_select_list_means_any_of():
    outcome, = evaluate_claims([Claim("kl", "<=", 0.5, (("sampler.step_size", (0.01, 0.1)),), "mean")], RESULTS)
    assert len(outcome.values) == 2 and outcome.holds
    outcome, = evaluate_claims([Claim("kl", "<=", 0.5, (("seed", (0, 1)),), "max")], RESULTS)
    assert [v for _, v in outcome.values] == pytest.approx([0.14, 0.30])


def test_versus_claims_pair_seeds_and_compare_with_the_counterpart():
    """ratio per seed: 0.30/0.10, 0.20/0.14, 0.40/0.12 -> mean 2.46, min 1.43; difference mean 0.18."""
    ratios = [b / a for a, b in zip(VALUES_A, VALUES_B)]
    versus = (("sampler.step_size", 0.01),)
    select = (("sampler.step_size", 0.1),)
    mean_ratio, = evaluate_claims([Claim("kl", ">=", 2.0, select, "mean", versus=versus)], RESULTS)
    assert mean_ratio.holds and mean_ratio.values[0][1] == pytest.approx(np.mean(ratios))
    assert "kl / same with sampler.step_size=0.01" in mean_ratio.line()
    min_ratio, = evaluate_claims([Claim("kl", ">=", 2.0, select, "min", versus=versus)], RESULTS)
    assert not min_ratio.holds and min_ratio.values[0][1] == pytest.approx(min(ratios))
    diff, = evaluate_claims([Claim("kl", ">", 0.17, select, "mean", versus=versus, compare="difference")], RESULTS)
    assert diff.holds and diff.values[0][1] == pytest.approx(np.mean(VALUES_B) - np.mean(VALUES_A))
    # a counterpart that does not exist makes the claim fail, never pass vacuously
    missing, = evaluate_claims([Claim("kl", ">=", 0.0, select, "mean", versus=(("sampler.step_size", 0.5),))],
                               RESULTS)
    assert not missing.holds and math.isnan(missing.values[0][1])
    # replacing the component by name ignores its params; a seed without a counterpart fails the claim
    other = table([("mala", 0.3, s, "kl", 0.05, "done") for s in range(2)])
    both = pd.concat([RESULTS, other], ignore_index=True)
    by_name, = evaluate_claims([Claim("kl", ">=", 0.0, select, "mean", versus=(("sampler", "mala"),))], both)
    assert not by_name.holds
    two_seeds = both[both.seed < 2]
    by_name, = evaluate_claims([Claim("kl", ">=", 3.9, select, "mean", versus=(("sampler", "mala"),))], two_seeds)
    assert by_name.holds and by_name.values[0][1] == pytest.approx(np.mean([0.30 / 0.05, 0.20 / 0.05]))


def test_versus_is_validated_in_the_suite(write_suite):
    from bench_core.base.errors import SuiteError
    from bench_core.pipeline import plan_suite

    base = """
        [suite]
        name = "v"
        device = "cpu"

        [[targets]]
        name = "gaussian"
        params = { dim = 2 }

        [[samplers]]
        name = "ula"

        [[metrics]]
        name = "mean_error"

        [[claims]]
        metric = "mean_error"
        op = "<="
        value = 2.0
    """
    plan_suite(write_suite(base + 'versus = { "sampler.step_size" = 0.1 }\n'))
    with pytest.raises(SuiteError, match="versus must be a non-empty table"):
        plan_suite(write_suite(base + "versus = 3\n"))
    with pytest.raises(SuiteError, match="compare needs versus"):
        plan_suite(write_suite(base + 'compare = "ratio"\n'))
    with pytest.raises(SuiteError, match="select key 'samplr'"):
        plan_suite(write_suite(base + 'versus = { samplr = "ddpm" }\n'))


def test_rank_at_equal_nfe_ranks_within_groups_of_equal_cost():
    rows = []
    for sampler, step, nfe, kl in (("ula", 0.01, 100, 0.3), ("ula", 0.02, 100, 0.1), ("ula", 0.05, 50, 0.5)):
        rows += [(sampler, step, seed, "kl", kl, "done") for seed in range(2)]
        rows += [(sampler, step, seed, "nfe.calls", nfe, "done") for seed in range(2)]
    results = table(rows)
    info = {"higher_is_better": {"kl": False, "nfe": False}, "rank_by": "kl", "rank_at_equal_nfe": True,
            "leaderboard_metrics": ["kl"]}
    _, ranked = leaderboard_tables(RunResults(results, pd.DataFrame(), info))[0]
    assert list(ranked["sampler"]) == ["ula(step_size=0.05)", "ula(step_size=0.02)", "ula(step_size=0.01)"]
    assert list(ranked["rank"]) == [1, 1, 2] and "nfe.calls" in ranked.columns
    plain = leaderboard_tables(RunResults(results, pd.DataFrame(), {**info, "rank_at_equal_nfe": False}))[0][1]
    assert list(plain["rank"]) == [1, 2, 3] and list(plain["sampler"])[0] == "ula(step_size=0.02)"


def test_thaw_undoes_freeze_for_lists_and_tables():
    from bench_core.suite.parsed import freeze, frozen_items, thaw

    value = {"a": [1, {"b": [2, 3]}], "c": {"d": 1.5}}
    frozen = freeze(value)
    assert hash(frozen) is not None and thaw(frozen) == value
    assert thaw(freeze([[1, 2], {"x": "y"}])) == [[1, 2], {"x": "y"}]
    assert dict((k, thaw(v)) for k, v in frozen_items(value)) == value


def test_claims_select_list_and_table_params_as_the_plan_does():
    """A select from the suite holds frozen values; rows hold JSON params: a table param matches too."""
    from bench_core.suite.parsed import frozen_items

    rows = table([("ula", 0.01, s, "kl", 0.1 + s, "done") for s in range(2)])
    rows["target_params"] = json.dumps({"dim": 2, "weights": [0.5, 0.5], "opts": {"a": 1, "b": [1, 2]}})
    for select in ({"target.opts": {"a": 1, "b": [1, 2]}}, {"target.weights": [[0.5, 0.5]]},
                   {"target.opts": [{"a": 1, "b": [1, 2]}, {"a": 2}]}):
        outcome, = evaluate_claims([Claim("kl", "<=", 2.0, frozen_items(select), "mean")], rows)
        assert outcome.holds and outcome.values[0][1] == pytest.approx(0.6), select
    outcome, = evaluate_claims([Claim("kl", "<=", 2.0, frozen_items({"target.opts": {"a": 2}}), "mean")], rows)
    assert outcome.values == [] and not outcome.holds


def test_status_counts_put_done_first_then_the_cells_not_done():
    from bench_core.results.run_results import status_counts

    assert status_counts(RESULTS) == {"done": 6, "diverged": 1}
    assert list(status_counts(RESULTS)) == ["done", "diverged"]


def test_one_select_matcher_for_exclusions_claims_and_only():
    from bench_core.pipeline import filter_cells
    from bench_core.plan.cells import PRIOR, Cell, select_matches
    from bench_core.suite.parsed import ComponentSpec, frozen_items

    def cell(weights, seed=0):
        target = ComponentSpec("targets", "gmm", frozen_items({"weights": weights, "opts": {"a": 1}}))
        sampler = ComponentSpec("samplers", "ula", frozen_items({"step_size": 0.1}))
        return Cell(target, ComponentSpec("scores", "exact", ()), PRIOR, sampler, seed, f"k{seed}{weights}", 0)

    cells = [cell([0.5, 0.5]), cell([0.2, 0.8], seed=1)]
    assert select_matches(cells[0], frozen_items({"target.opts": {"a": 1}, "target.weights": [[0.5, 0.5]]}))
    assert not select_matches(cells[1], frozen_items({"target.weights": [[0.5, 0.5]]}))
    assert select_matches(cells[1], frozen_items({"seed": [0, 1], "sampler": "ula", "step": 10}))
    assert filter_cells(cells, "seed=0|1,sampler.step_size=0.1") == cells
    assert filter_cells(cells, "seed=1|2,sampler=ula") == [cells[1]]
