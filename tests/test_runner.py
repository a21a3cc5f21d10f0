"""Runner behaviour: statuses, checkpoints, determinism across executors, common random numbers."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from bench_core.results.run_results import load_results
from bench_core.base.seeding import derive_seed
from bench_core.pipeline import run_suite
from conftest import BASE_SUITE


def run(write_suite, tmp_path, text, registry, **kw):
    path = write_suite(text)
    return run_suite(path, out=tmp_path / "out", registry=registry, **kw), tmp_path / "out"


def test_diverged_failed_skipped_cells_are_recorded_and_the_run_goes_on(write_suite, tmp_path, toy_registry):
    text = BASE_SUITE.replace('[[samplers]]\nname = "ula"\nparams = { step_size = 0.05, n_steps = 20 }',
                              '[[samplers]]\nname = "ula"\nparams = { step_size = 0.05, n_steps = 20 }\n'
                              '[[samplers]]\nname = "toy_exploding"\n[[samplers]]\nname = "toy_raising"\n'
                              '[[samplers]]\nname = "toy_skipping"')
    summary, out = run(write_suite, tmp_path, text, toy_registry)
    assert summary.statuses == {"done": 2, "diverged": 2, "failed": 2, "skipped": 2}
    assert summary.exit_code == 1  # failed and diverged cells make the run fail
    results = load_results(out).results
    errors = results[results["metric"] == "error"].set_index("sampler")
    assert set(errors["status"]) == {"diverged", "failed", "skipped"}
    assert errors.loc["toy_exploding", "reason"].iloc[0].startswith("non-finite particles at step 2")
    assert "RuntimeError: deliberate failure in toy sampler" in errors.loc["toy_raising", "reason"].iloc[0]
    assert errors.loc["toy_skipping", "reason"].iloc[0] == "toy sampler does not apply to this target"
    assert errors["value"].isna().all()
    done = results[results["sampler"] == "ula"]
    assert (done["status"] == "done").all() and done["value"].notna().all()


def test_exploding_diverges_at_the_first_non_finite_step(write_suite, tmp_path, toy_registry):
    # x0 ~ N(1, I): |x| ~ 1, float32 max ~ 3.4e38: after 2 multiplications by 1e30 it overflows to inf.
    text = BASE_SUITE.replace('name = "ula"', 'name = "toy_exploding"').replace(
        "params = { step_size = 0.05, n_steps = 20 }", "")
    summary, out = run(write_suite, tmp_path, text, toy_registry)
    reasons = load_results(out).results["reason"]
    assert set(reasons) == {"non-finite particles at step 2 (t=2)"}


def test_skipped_and_failed_metrics_keep_the_other_metrics(write_suite, tmp_path, toy_registry):
    text = BASE_SUITE + '\n[[metrics]]\nname = "toy_broken"\n[[metrics]]\nname = "gaussian_kl"\n'
    text = text.replace('name = "gaussian"\nparams = { dim = 3, mean = 1.0 }',
                        'name = "gaussian"\nparams = { dim = 3, mean = 1.0 }')
    summary, out = run(write_suite, tmp_path, text, toy_registry)
    results = load_results(out).results
    by_metric = results.groupby("metric")["status"].agg(set)
    assert by_metric["mean_error"] == {"done"} and by_metric["gaussian_kl"] == {"done"}
    assert by_metric["toy_broken"] == {"failed"}
    assert "ZeroDivisionError" in results[results["metric"] == "toy_broken"]["reason"].iloc[0]
    assert summary.exit_code == 1


def test_checkpoints_write_trajectory(write_suite, tmp_path, toy_registry):
    text = BASE_SUITE.replace('device = "cpu"', 'device = "cpu"\ncheckpoints = [0, 5, 20, 999]')
    summary, out = run(write_suite, tmp_path, text, toy_registry)
    traj = load_results(out).trajectory
    assert sorted(set(traj["step"])) == [0, 5, 20]  # 999 is beyond the 20 steps: never reached
    assert set(traj["t"]) == {0.0, 0.25, 1.0}  # Langevin time k * h with h = 0.05
    final = load_results(out).results.set_index(["cell", "metric"])["value"]
    at_20 = traj[traj["step"] == 20].set_index(["cell", "metric"])["value"]
    pd.testing.assert_series_equal(final.sort_index(), at_20.sort_index(), check_names=False)


def test_common_random_numbers(write_suite, tmp_path, toy_registry):
    """Two samplers in the same seed see the same data and starts; different seeds do not."""
    text = BASE_SUITE.replace('name = "mean_error"', 'name = "toy_start"') + (
        '\n[[samplers]]\nname = "toy_identity"\n')
    summary, out = run(write_suite, tmp_path, text, toy_registry)
    res = load_results(out).results.pivot_table(index=["seed", "sampler"], columns="metric", values="value")
    for seed in (0, 1):
        assert res.loc[(seed, "ula"), "toy_start.x0"] == res.loc[(seed, "toy_identity"), "toy_start.x0"]
        assert res.loc[(seed, "ula"), "toy_start.train"] == res.loc[(seed, "toy_identity"), "toy_start.train"]
    assert res.loc[(0, "ula"), "toy_start.x0"] != res.loc[(1, "ula"), "toy_start.x0"]
    assert derive_seed(0, "train", {"a": 1}) != derive_seed(0, "init", {"a": 1})
    assert derive_seed(0, "train", {"a": 1}) == derive_seed(0, "train", {"a": 1})


EXECUTOR_SUITE = (BASE_SUITE.replace("params = { step_size = 0.05, n_steps = 20 }",
                                     "params = { n_steps = 50 }\ngrid = { step_size = [0.01, 0.1] }")
                  + '\n[[metrics]]\nname = "gaussian_kl"\n')


def _values(out):
    df = load_results(out).results
    return df.drop(columns=["wall_s"]).sort_values(["cell", "metric"]).reset_index(drop=True)


def test_same_numbers_on_every_executor_and_order(write_suite, tmp_path, toy_registry):
    from bench_core.components.discovery import get_registry

    text = EXECUTOR_SUITE
    path = write_suite(text)
    registry = get_registry()
    run_suite(path, out=tmp_path / "local", registry=registry)
    run_suite(path, out=tmp_path / "process", registry=registry, executor="process", workers=2)
    # a different cell order: seeds reversed, and a subset run first then the rest (a resume)
    reordered = write_suite(text.replace("seeds = [0, 1]", "seeds = [1, 0]"), name="reordered.toml")
    run_suite(reordered, out=tmp_path / "resumed", registry=registry, only="seed=0")
    run_suite(reordered, out=tmp_path / "resumed", registry=registry)
    frames = {name: _values(tmp_path / name) for name in ("local", "process", "resumed")}
    pd.testing.assert_frame_equal(frames["local"], frames["process"])
    pd.testing.assert_frame_equal(frames["local"], frames["resumed"])
    assert not any(math.isnan(v) for v in frames["local"]["value"])


def test_same_numbers_under_ray(write_suite, tmp_path, ray_address):
    path = write_suite(EXECUTOR_SUITE)
    run_suite(path, out=tmp_path / "local")
    summary = run_suite(path, out=tmp_path / "ray", executor="ray", workers=2, address=ray_address)
    assert summary.statuses == {"done": summary.n_cells}
    pd.testing.assert_frame_equal(_values(tmp_path / "local"), _values(tmp_path / "ray"))


def test_rerun_and_resume_skip_logic(write_suite, tmp_path, toy_registry):
    path = write_suite()
    first = run_suite(path, out=tmp_path / "o", registry=toy_registry)
    again = run_suite(path, out=tmp_path / "o", registry=toy_registry)
    forced = run_suite(path, out=tmp_path / "o", registry=toy_registry, rerun=True)
    assert (first.n_run, again.n_run, again.n_skipped_finished, forced.n_run) == (2, 0, 2, 2)
    results = load_results(tmp_path / "o").results
    assert len(results) == 6  # 2 cells x (1 metric + nfe.calls + nfe.evals), never duplicated


@pytest.mark.parametrize("op, value, holds", [("<=", 10.0, True), (">", 10.0, False)])
def test_claims_decide_the_exit_code(write_suite, tmp_path, toy_registry, op, value, holds):
    text = BASE_SUITE + f'\n[[claims]]\nselect = {{ sampler = "ula" }}\nmetric = "mean_error"\nop = "{op}"\n' \
                        f'value = {value}\nwhy = "test"\n'
    summary, out = run(write_suite, tmp_path, text, toy_registry)
    assert summary.claims[0].holds is holds
    assert summary.exit_code == (0 if holds else 1)
    assert ("PASS" if holds else "FAIL") in (out / "leaderboard.md").read_text()


def test_claims_can_select_a_checkpoint_step(write_suite, tmp_path, toy_registry):
    text = BASE_SUITE.replace('device = "cpu"', 'device = "cpu"\ncheckpoints = [0, 20]')
    text += '\n[[claims]]\nselect = { step = 0 }\nmetric = "mean_error"\nop = ">="\nvalue = 0.5\n'
    text += '\n[[claims]]\nselect = { step = 20 }\nmetric = "mean_error"\nop = "<="\nvalue = 1.0\n'
    summary, out = run(write_suite, tmp_path, text, toy_registry)
    # at step 0 particles are N(0, I) and the target mean is 1*ones(3): the error is ~sqrt(3) = 1.73
    assert [c.holds for c in summary.claims] == [True, True]
    assert summary.claims[0].values[0][1] > 1.5
    bad = write_suite(text.replace("select = { step = 20 }", "select = { step = 7 }"), name="bad.toml")
    from bench_core.base.errors import SuiteError
    with pytest.raises(SuiteError, match="step 7, which is not in \\[suite\\] checkpoints"):
        run_suite(bad, out=tmp_path / "bad", registry=toy_registry)


def test_show_into_a_closed_pipe_exits_quietly(write_suite, tmp_path):
    """`bench show DIR | head`: the reader closes the pipe before bench writes; no traceback."""
    import subprocess

    from bench_core.pipeline import run_suite
    from helpers import cli_command

    run_suite(write_suite(), out=tmp_path / "out")
    proc = subprocess.Popen(cli_command("show", tmp_path / "out"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before the first write
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and err == "", err


def test_a_failing_cell_names_the_module_path_and_line(write_suite, tmp_path, monkeypatch):
    import importlib

    from bench_core.components.discovery import build_registry

    package = tmp_path / "pkgs" / "my_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "samplers.py").write_text(
        "from bench_core import hookimpl\n\n\n"
        "class Broken:\n"
        "    family = 'langevin'\n\n"
        "    def sample(self, score, x0, *, generator, callback=None):\n"
        "        raise RuntimeError('boom')\n\n\n"
        "@hookimpl\n"
        "def register_samplers(register):\n"
        "    register('broken_sampler', Broken)\n")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    module = importlib.import_module("my_pkg.samplers")
    registry = build_registry(extra=[module], entry_points=False)
    suite = write_suite(BASE_SUITE.replace('name = "ula"\nparams = { step_size = 0.05, n_steps = 20 }',
                                           'name = "broken_sampler"'))
    run_suite(suite, out=tmp_path / "out", registry=registry)
    reason = pd.read_csv(tmp_path / "out" / "results.csv")["reason"].iloc[0]
    assert reason == "in sampler 'broken_sampler': RuntimeError: boom (at my_pkg/samplers.py:8)"


def test_nfe_counts_the_samplers_score_evaluations_and_diagnostics_are_recorded(write_suite, tmp_path):
    """ULA: one call per step; DDIM: n_steps calls; the metrics' own evaluations (score_error) are not
    counted; checkpoints carry the count so far; diagnostics() becomes sampler.<key>."""
    import types

    from bench_core import hookimpl
    from bench_core.components.discovery import build_registry
    from bench_plugins.samplers.langevin import ULA

    class TalkativeULA(ULA):
        def diagnostics(self):
            return {"steps_taken": self.n_steps, "half": 0.5}

    class BrokenDiagnostics(ULA):
        def diagnostics(self):
            raise RuntimeError("no idea")

    @hookimpl
    def register_samplers(register):
        register("talkative_ula", TalkativeULA)
        register("broken_diagnostics", BrokenDiagnostics)

    registry = build_registry(extra=[types.SimpleNamespace(__name__="diag", register_samplers=register_samplers)],
                              entry_points=False)
    suite = write_suite("""
        [suite]
        name = "nfe"
        seeds = [0]
        n_samples = 300
        device = "cpu"
        checkpoints = [0, 5]

        [[targets]]
        name = "gaussian"
        params = { dim = 2 }

        [[samplers]]
        name = "talkative_ula"
        params = { n_steps = 20 }

        [[samplers]]
        name = "broken_diagnostics"
        params = { n_steps = 7 }

        [[samplers]]
        name = "ddim"
        params = { n_steps = 25 }

        [[metrics]]
        name = "score_error"
        params = { n_mc_bar = 50, bar_nodes = 5 }
    """)
    summary = run_suite(suite, out=tmp_path / "out", registry=registry)
    assert summary.statuses == {"done": 3, "metric_failed": 1}
    run = load_results(tmp_path / "out")
    final = run.results.set_index(["sampler", "metric"])
    assert final.loc[("talkative_ula", "nfe.calls"), "value"] == 20
    assert final.loc[("talkative_ula", "nfe.evals"), "value"] == 20 * 300
    assert final.loc[("ddim", "nfe.calls"), "value"] == 25
    assert final.loc[("talkative_ula", "sampler.steps_taken"), "value"] == 20
    assert final.loc[("talkative_ula", "sampler.half"), "value"] == 0.5
    broken = final.loc[("broken_diagnostics", "sampler.diagnostics")]
    assert broken["status"] == "failed" and "RuntimeError: no idea" in broken["reason"]
    assert final.loc[("broken_diagnostics", "nfe.calls"), "value"] == 7
    steps = run.trajectory[run.trajectory.metric == "nfe.calls"].set_index(["sampler", "step"])["value"]
    assert steps[("talkative_ula", 0)] == 0 and steps[("talkative_ula", 5)] == 5


def test_checkpoints_in_time_land_on_the_nearest_step_of_each_sampler(write_suite, tmp_path):
    """ULA h = 0.03: t = 0.5 falls between steps 16 (0.48) and 17 (0.51): 17 is nearer. h = 0.01: step 50.
    DDPM (100 levels, OU time decreasing from 5.4): t = 1.0 is recorded within one step of 1.0."""
    suite = write_suite("""
        [suite]
        name = "tchk"
        seeds = [0]
        n_samples = 200
        device = "cpu"
        checkpoints_t = [0.0, 0.5, 1.0]

        [[targets]]
        name = "gaussian"
        params = { dim = 2 }

        [[samplers]]
        name = "ula"
        params = { n_steps = 60 }
        grid = { step_size = [0.01, 0.03] }

        [[samplers]]
        name = "ddpm"
        params = { n_steps = 100 }

        [[metrics]]
        name = "mean_error"
    """)
    run_suite(suite, out=tmp_path / "out")
    traj = load_results(tmp_path / "out").trajectory
    rows = traj[traj.metric == "mean_error"]
    steps = {(r.sampler, r.sampler_params): sorted(zip(rows[(rows.sampler == r.sampler) & (
        rows.sampler_params == r.sampler_params)].step, rows[(rows.sampler == r.sampler) & (
        rows.sampler_params == r.sampler_params)].t)) for r in rows.itertuples()}
    fine = steps[("ula", '{"n_steps":60,"step_size":0.01}')]
    coarse = steps[("ula", '{"n_steps":60,"step_size":0.03}')]
    assert [s for s, _ in fine] == [0, 50]  # t = 1.0 is past the horizon 0.6: not recorded
    assert [s for s, _ in coarse] == [0, 17, 33]  # 0.51 (not 0.48) and 0.99 (not 1.02)
    ddpm = steps[("ddpm", '{"n_steps":100}')]  # OU time runs down from 5.4 to 0
    assert [round(t, 3) for _, t in ddpm] == [1.003, 0.493, 0.0], ddpm
    # each is the nearest point of DDPM's grid of 100 levels: the neighbours are farther from 1.0 and 0.5
    from bench_plugins.samplers.schedules import linear_beta_alpha_bars, ou_time
    grid = [0.0] + [float(v) for v in ou_time(linear_beta_alpha_bars(100))]
    for target_t, (_, t) in zip((1.0, 0.5, 0.0), ddpm):
        assert abs(t - target_t) == pytest.approx(min(abs(g - target_t) for g in grid), abs=1e-8)  # csv: 10 digits
    nfe = traj[(traj.metric == "nfe.calls") & (traj.sampler == "ula")].set_index(["sampler_params", "step"])["value"]
    assert nfe[('{"n_steps":60,"step_size":0.03}', 17)] == 17 and nfe[('{"n_steps":60,"step_size":0.03}', 33)] == 33


def test_all_finite_detects_every_non_finite_entry():
    import torch

    from bench_core.cell.runner import all_finite

    x = torch.randn(1000, 50)
    assert all_finite(x)
    for bad in (math.nan, math.inf, -math.inf):
        y = x.clone()
        y[517, 3] = bad
        assert not all_finite(y), bad
    y = x.clone()
    y[0, 0], y[1, 1] = math.inf, -math.inf  # opposite infinities: NaN, still caught
    assert not all_finite(y)
    y = x.clone()
    y[:10] = 1e30  # large but finite particles are not diverged
    assert all_finite(y)
