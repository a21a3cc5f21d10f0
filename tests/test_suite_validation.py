"""Every bad input is refused before anything runs: exit 2, one line naming what and where."""
from __future__ import annotations

import pytest

from bench_core.cli import main
from conftest import BASE_SUITE


def check(capsys, path):
    rc = main(["check", str(path)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def assert_one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bench: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


def test_valid_suite_prints_cell_count(write_suite, capsys):
    rc, out, err = check(capsys, write_suite())
    assert rc == 0, err
    assert "2 cells" in out  # 1 target x 1 score x 1 init x 1 sampler x 2 seeds


@pytest.mark.parametrize("edit, needles", [
    # unknown key in [suite], with a did-you-mean and the line it is on (line 4: 'seed = ...')
    (lambda s: s.replace("seeds = [0, 1]", "seed = [0, 1]"), ["suite.toml:4", "unknown key 'seed'",
                                                           "did you mean 'seeds'"]),
    # wrong type
    (lambda s: s.replace("n_samples = 200", 'n_samples = "many"'), ["suite.toml:5", "n_samples must be",
                                                                   "'many'"]),
    # unknown component name with did-you-mean, located at its [[samplers]] table (line 14)
    (lambda s: s.replace('name = "ula"', 'name = "ulaa"'), ["suite.toml:16", "unknown sampler 'ulaa'",
                                                          "did you mean 'ula'"]),
    # empty grid axis
    (lambda s: s.replace("params = { step_size = 0.05, n_steps = 20 }",
                         "params = { n_steps = 20 }\ngrid = { step_size = [] }"),
     ["grid axis 'step_size'", "is empty", "[[samplers]]"]),
    # params a factory rejects (ValueError from the factory), located at the param's line
    (lambda s: s.replace("step_size = 0.05", "step_size = -1.0"), ["suite.toml:17", "sampler 'ula'",
                                                                   "step_size", "> 0"]),
    # a parameter the factory does not accept
    (lambda s: s.replace("n_steps = 20", "nsteps = 20"), ["unknown parameter 'nsteps'",
                                                         "did you mean 'n_steps'"]),
    # a param's old name: the new one, at the param's line
    (lambda s: s.replace('name = "ula"\nparams = { step_size = 0.05, n_steps = 20 }',
                         'name = "annealed_langevin"\nparams = { n_levels = 5, eps = 0.002 }'),
     ["suite.toml:17", "parameter 'eps' of sampler 'annealed_langevin' is now 'step_size'; rename it in the suite"]),
    (lambda s: s + '\n[[metrics]]\nname = "energy"\nparams = { n = 100 }\n',
     ["parameter 'n' of metric 'energy' is now 'n_mc'; rename it in the suite"]),
    # a param the chosen mode ignores is refused, with the params that mode reads
    (lambda s: s.replace('name = "ula"\nparams = { step_size = 0.05, n_steps = 20 }',
                         'name = "ddpm"\nparams = { n_steps = 30, T = 5.0 }'),
     ["suite.toml:17", "sampler 'ddpm'", "parameter 'T' is not used when discretization = 'ancestral'",
      "(discretization 'ancestral' uses n_steps, beta_min, beta_max)"]),
    (lambda s: s + '\n[[scores]]\nname = "ball_trap"\nparams = { schedule = "naive", budget = 0.01 }\n',
     ["score 'ball_trap'", "parameter 'budget' is not used when schedule = 'naive'"]),
    # unknown top-level table
    (lambda s: s + "\n[[sampler]]\nname = 'ula'\n", ["unknown table 'sampler'", "did you mean 'samplers'"]),
    # unknown key inside a component table
    (lambda s: s.replace('[[metrics]]\nname = "mean_error"', '[[metrics]]\nname = "mean_error"\nparam = {}'),
     ["unknown key 'param'", "[[metrics]] #1", "did you mean 'params'"]),
    # broken TOML
    (lambda s: s.replace("n_samples = 200", "n_samples = = 200"), ["invalid TOML", "line 5"]),
    # claim on a metric the suite does not compute
    (lambda s: s + '\n[[claims]]\nmetric = "gaussian_kll"\nop = "<="\nvalue = 1\n',
     ["claim metric 'gaussian_kll'", "not computed"]),
    # claim that selects nothing
    (lambda s: s + '\n[[claims]]\nselect = { sampler = "ddpm" }\nmetric = "mean_error"\nop = "<="\nvalue = 1\n',
     ["claim selects no cell"]),
    # claim with a bad operator
    (lambda s: s + '\n[[claims]]\nmetric = "mean_error"\nop = "=<"\nvalue = 1\n', ["op must be one of"]),
    # missing suite name
    (lambda s: s.replace('name = "t"\n', ""), ["missing [suite] name"]),
    # target param of the wrong length
    (lambda s: s.replace("mean = 1.0", "mean = [1.0, 2.0]"), ["target 'gaussian'", "mean", "dim = 3"]),
])
def test_bad_input_exits_2_with_one_located_line(write_suite, capsys, edit, needles):
    rc, out, err = check(capsys, write_suite(edit(BASE_SUITE)))
    assert rc == 2
    assert_one_line_error(err, *needles)


def test_missing_suite_file(capsys, tmp_path):
    rc, _, err = check(capsys, tmp_path / "nope.toml")
    assert rc == 2
    assert_one_line_error(err, "nope.toml", "not found")


def test_run_refuses_bad_suite_before_running(write_suite, capsys, tmp_path):
    path = write_suite(BASE_SUITE.replace('name = "ula"', 'name = "ulaa"'))
    rc = main(["run", str(path), "--out", str(tmp_path / "out")])
    assert rc == 2
    assert not (tmp_path / "out").exists()  # nothing ran, nothing written


def test_unknown_executor_and_only(write_suite, capsys, tmp_path):
    path = write_suite()
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--executor", "proces"]) == 2
    assert_one_line_error(capsys.readouterr().err, "unknown executor 'proces'", "did you mean 'process'")
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--only", "sampler=ddpm"]) == 2
    assert_one_line_error(capsys.readouterr().err, "--only", "selects none")
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--only", "smapler=ula"]) == 2
    assert_one_line_error(capsys.readouterr().err, "unknown key 'smapler'", "did you mean 'sampler'")


def test_grid_expansion_and_diffusion_collapse(write_suite, toy_registry):
    from bench_core.pipeline import plan_suite

    text = BASE_SUITE.replace("params = { step_size = 0.05, n_steps = 20 }",
                              "params = { n_steps = 20 }\ngrid = { step_size = [0.01, 0.02, 0.03] }")
    text += '\n[[initializers]]\nname = "standard_normal"\n'
    plan = plan_suite(write_suite(text), registry=toy_registry)
    assert len(plan.cells) == 3 * 2
    steps = sorted({dict(c.sampler.params)["step_size"] for c in plan.cells})
    assert steps == [0.01, 0.02, 0.03]
    assert len({c.key for c in plan.cells}) == len(plan.cells)


EXCLUDE_SUITE = BASE_SUITE.replace("params = { dim = 3, mean = 1.0 }", "params = { dim = 3 }\ngrid = { mean = [0.0, 1.0] }")


def test_exclude_drops_matching_cells_and_keeps_keys(write_suite, toy_registry):
    from bench_core.pipeline import plan_suite

    full = plan_suite(write_suite(EXCLUDE_SUITE, "full.toml"), registry=toy_registry)
    text = EXCLUDE_SUITE + '\n[[exclude]]\nselect = { "target.mean" = 1.0, seed = 0 }\nwhy = "test"\n'
    plan = plan_suite(write_suite(text), registry=toy_registry)
    assert len(full.cells) == 4 and len(plan.cells) == 3
    assert [c.order for c in plan.cells] == [0, 1, 2]
    # the kept cells are the same cells (same keys) as in the full grid
    assert {c.key for c in plan.cells} < {c.key for c in full.cells}


@pytest.mark.parametrize("block, needles", [
    ('[[exclude]]\nselect = { "target.mean" = 7.0 }\n', ["suite.toml:", "matches no cell"]),
    ('[[exclude]]\nselcet = { seed = 0 }\n', ["unknown key 'selcet'", "did you mean 'select'"]),
    ('[[exclude]]\nwhy = "x"\n', ["needs a non-empty select"]),
    ('[[exclude]]\nselect = { smapler = "ula" }\n', ["select key 'smapler'", "did you mean 'sampler'"]),
])
def test_bad_exclusions_exit_2(write_suite, capsys, block, needles):
    rc, _, err = check(capsys, write_suite(EXCLUDE_SUITE + "\n" + block))
    assert rc == 2
    assert_one_line_error(err, *needles)


def test_claims_name_grid_metrics_by_their_label(write_suite, capsys):
    text = EXCLUDE_SUITE + ('\n[[metrics]]\nname = "tv_witness"\ngrid = { witness = ["ball_trap", "memorized"] }\n'
                            '\n[[claims]]\nmetric = "tv_witness(witness=\'ball_trap\').lower"\nop = "<="\nvalue = 1\n')
    rc, out, err = check(capsys, write_suite(text))
    assert rc == 0, err
    bad = text.replace("witness='ball_trap'", "witness='cone_trap'")
    rc, _, err = check(capsys, write_suite(bad, "bad.toml"))
    assert rc == 2 and "is not computed by this suite" in err


def test_check_refuses_samplers_that_cannot_run_before_anything_runs(write_suite):
    """`bench check` catches a sample() without callback and a param of the wrong type for its annotation."""
    import types

    from bench_core import hookimpl
    from bench_core.base.errors import PluginError, SuiteError
    from bench_core.components.discovery import build_registry
    from bench_core.pipeline import plan_suite
    from toy_components import NoCallbackArgSampler

    class Annotated:
        family = "langevin"

        def __init__(self, n_steps: int = 10, step_size: float = 0.1) -> None:
            self.n_steps, self.step_size = n_steps, step_size

        def sample(self, score, x0, *, generator, callback=None):
            return x0.clone()

    @hookimpl
    def register_samplers(register):
        register("no_callback", NoCallbackArgSampler)
        register("annotated", Annotated)

    registry = build_registry(extra=[types.SimpleNamespace(__name__="my_samplers",
                                                           register_samplers=register_samplers)],
                              entry_points=False)
    base = "[suite]\nname = 's'\ndevice = 'cpu'\n[[targets]]\nname = 'gaussian'\nparams = { dim = 2 }\n" \
           "[[metrics]]\nname = 'mean_error'\n[[samplers]]\n"
    with pytest.raises(PluginError, match=r"plugin 'my_samplers'.*'no_callback'.*cannot be called as "
                                          r"sample\(score, x0, \*, generator, callback\)"):
        plan_suite(write_suite(base + "name = 'no_callback'\n"), registry=registry)
    with pytest.raises(SuiteError, match=r"suite.toml:\d+: .*parameter 'n_steps' of sampler 'annotated' must be "
                                         r"int \(its annotation\), got 100.0"):
        plan_suite(write_suite(base + "name = 'annotated'\nparams = { n_steps = 100.0 }\n"), registry=registry)
    plan_suite(write_suite(base + "name = 'annotated'\nparams = { n_steps = 100, step_size = 1 }\n"),
               registry=registry)  # an int where a float is annotated is fine
