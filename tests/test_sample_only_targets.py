"""Targets that are only samples (data sets): the harness takes training rows, reference and fresh starts
from the right split, refuses what needs a closed form before any cell runs, keys cells on the data
file's content, and answers every bad data input with one line naming the file and the fix."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from bench_core.cli import main
from bench_core.components.discovery import get_registry
from bench_core.pipeline import plan_suite
from bench_core.plan.training_data import make_reference, make_training_data
from bench_core.suite.parsed import ComponentSpec

DIGITS = ComponentSpec("targets", "dataset", (("source", "digits"),))


def _suite(tmp_path, target: str, *, score: str = "empirical", metric: str = "energy", data: str = "",
           extra: str = "") -> str:
    path = tmp_path / "suite.toml"
    path.write_text(textwrap.dedent(f"""\
        [suite]
        name = "data"
        seeds = [0]
        n_samples = 200
        device = "cpu"
        {data}
        [[targets]]
        name = "dataset"
        params = {target}

        [[scores]]
        name = "{score}"

        [[samplers]]
        name = "ula"
        params = {{ n_steps = 10 }}

        [[metrics]]
        name = "{metric}"
        {extra}
        """))
    return str(path)


def _check(path: str, capsys) -> tuple[int, str]:
    code = main(["check", path])
    err = capsys.readouterr().err.strip()
    return code, err


def test_training_rows_reference_and_fresh_starts_come_from_their_splits():
    target = get_registry().create("targets", "dataset", source="digits")
    train_rows, heldout_rows = target.split(0)
    data = make_training_data(target, DIGITS, 0, 500, 2, "cpu")
    reference = make_reference(target, DIGITS, 0, 10_000, "cpu")
    assert data.train.shape == (1000, 64) and data.distinct.shape == (500, 64)
    assert torch.equal(data.heldout, heldout_rows) and torch.equal(reference, heldout_rows)  # all 359 held-out rows

    def rows_in(rows, pool):  # every row of `rows` is a row of `pool` (dequantized rows are all distinct)
        exact = torch.cdist(rows.double(), pool.double(), compute_mode="donot_use_mm_for_euclid_dist")
        return bool((exact.min(dim=1).values == 0).all())

    assert rows_in(data.distinct, train_rows) and not rows_in(data.distinct[:1], heldout_rows)
    smaller = make_reference(target, DIGITS, 0, 100, "cpu")
    assert smaller.shape == (100, 64) and rows_in(smaller, heldout_rows)
    fresh = get_registry().create("initializers", "fresh", distinct=30)
    x0 = fresh(300, target=target, data=data, generator=torch.Generator().manual_seed(1))
    assert x0.shape == (300, 64) and rows_in(x0, heldout_rows) and torch.unique(x0, dim=0).shape[0] == 30


@pytest.mark.parametrize("table,name,instead", [
    ("scores", "exact", "use a learned score: empirical, ddpm_mlp or network"),
    ("scores", "ball_trap", "use a learned score: empirical, ddpm_mlp or network"),
    ("scores", "noisy", "use a learned score: empirical, ddpm_mlp or network"),
    ("metrics", "gaussian_kl", "use frechet"),
    ("metrics", "score_error", "use dsm_loss"),
    ("metrics", "tv_witness", "use tv_classifier"),
    ("metrics", "tv_modes", "use tv_classifier"),
])
def test_what_needs_a_closed_form_is_refused_at_check(tmp_path, capsys, table, name, instead):
    kwargs = {"score": name} if table == "scores" else {"metric": name}
    code, err = _check(_suite(tmp_path, '{ source = "moons" }', **kwargs), capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"'{name}' needs the closed form of its target" in err and instead in err
    assert "has only samples" in err and "suite.toml:" in err


def test_an_excluded_pair_is_not_refused(tmp_path, capsys):
    extra = """
        [[scores]]
        name = "empirical"

        [[targets]]
        name = "gaussian"
        params = { dim = 2 }

        [[exclude]]
        select = { target = "dataset", score = "exact" }
        """
    code, err = _check(_suite(tmp_path, '{ source = "moons" }', score="exact", extra=extra), capsys)
    assert code == 0, err


def test_more_training_rows_than_the_split_holds_is_refused_with_the_numbers(tmp_path, capsys):
    code, err = _check(_suite(tmp_path, '{ source = "wine" }', data="[data]\nn_train = 150\n"), capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    # wine: 178 rows, floor(0.2 * 178 + 0.5) = 36 held out, 142 training
    assert "n_train = 150" in err and "142 of its 178 rows; 36 are held out" in err and "at most 142" in err


def _npy(path, rows) -> None:
    np.save(path, np.asarray(rows, dtype=np.float64))


def test_the_data_file_content_is_in_the_cell_key(tmp_path):
    rows = np.random.default_rng(0).normal(size=(200, 2))
    _npy(tmp_path / "mine.npy", rows)
    suite = _suite(tmp_path, '{ path = "mine.npy" }', data="[data]\nn_train = 100\n")
    keys = [c.key for c in plan_suite(suite).cells]
    assert keys == [c.key for c in plan_suite(suite).cells]  # unchanged file: same keys (nothing reruns)
    _npy(tmp_path / "mine.npy", rows + 1e-3)
    assert all(a != b for a, b in zip(keys, [c.key for c in plan_suite(suite).cells]))  # edited: every key new


def _bad_files(tmp_path) -> dict:
    torch.save({"weights": torch.ones(3)}, tmp_path / "pickle.pt")
    _npy(tmp_path / "flat.npy", np.ones(50))
    _npy(tmp_path / "cube.npy", np.ones((20, 2, 2)))
    nan = np.random.default_rng(1).normal(size=(40, 2))
    nan[7, 1] = np.nan
    _npy(tmp_path / "nan.npy", nan)
    (tmp_path / "words.csv").write_text("a,b\n1,2\nx,y\n")
    _npy(tmp_path / "tiny.npy", np.ones((9, 2)))
    _npy(tmp_path / "sixteen.npy", np.random.default_rng(2).normal(size=(40, 16)))
    return {"missing": ('{ path = "nowhere.npy" }', "nowhere.npy"),
            "1-D": ('{ path = "flat.npy" }', "flat.npy"),
            "3-D": ('{ path = "cube.npy" }', "cube.npy"),
            "nan": ('{ path = "nan.npy" }', "nan.npy"),
            "non-numeric csv": ('{ path = "words.csv" }', "words.csv"),
            "pickle .pt": ('{ path = "pickle.pt" }', "pickle.pt"),
            "unknown source": ('{ source = "mnist" }', "source"),
            "image_shape": ('{ path = "sixteen.npy", image_shape = [3, 5] }', "image_shape"),
            "fewer than 10 rows": ('{ path = "tiny.npy" }', "tiny.npy")}


@pytest.mark.parametrize("case", ["missing", "1-D", "3-D", "nan", "non-numeric csv", "pickle .pt", "unknown source",
                                  "image_shape", "fewer than 10 rows"])
def test_bad_data_is_one_line_naming_the_file(tmp_path, capsys, case):
    target, named = _bad_files(tmp_path)[case]
    code, err = _check(_suite(tmp_path, target), capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("bench: error: ") and "suite.toml:" in err and named in err and "Traceback" not in err
