"""DatasetTarget: bundled tables, i.i.d. shapes and user files; per-seed splits and train-only preprocessing.

Tolerances: a Kolmogorov-Smirnov statistic D of n i.i.d. draws from the hypothesized law has
``sqrt(n) D -> K`` (Kolmogorov distribution), ``P(K > 1.95) = 2 sum_k (-1)^(k-1) exp(-2 k^2 1.95^2) ~ 0.001``,
so ``sqrt(n) D < 1.95`` fails a correct generator 1 time in 1000 (the seeds are fixed: it passes or
fails for good). A fraction of n Bernoulli(1/2) draws has std ``0.5 / sqrt(n)``; we allow 4 of them.
"""
from __future__ import annotations

import hashlib
import math
import pickle

import numpy as np
import pytest
import torch
from scipy import stats

from bench_core.suite.paths import suite_directory
from bench_plugins.targets.data_sources import draw_moons
from bench_plugins.targets.dataset import DatasetTarget

KS_LIMIT = 1.95  # sqrt(n) * D above this: p < 0.001 under the hypothesis


@pytest.fixture
def float64():
    """Float64 default dtype: statistics checked to 1e-6 are not float32 rounding."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture(scope="module")
def digits_rows() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().data


def raw(**params) -> DatasetTarget:
    """No preprocessing: the split returns the file's rows themselves."""
    return DatasetTarget(standardize=False, dequantize=False, **params)


def indexed_rows(n: int, d: int = 3) -> np.ndarray:
    """Rows whose first column is the row index (so a split can be traced back), float64."""
    rng = np.random.default_rng(0)
    return np.column_stack([np.arange(n), rng.normal(size=(n, d - 1))])


def sorted_rows(x) -> np.ndarray:
    x = np.asarray(x)
    return x[np.lexsort(x.T[::-1])]


# ---------------------------------------------------------------- bundled tables

def test_digits_shape_image_shape_and_no_closed_forms():
    target = DatasetTarget(source="digits")
    assert (target.dim, target.n_rows, target.image_shape, target.data_digest) == (64, 1797, (8, 8), None)
    assert target.dequantize is True  # integer grey levels 0..16
    assert not hasattr(target, "score") and not hasattr(target, "log_prob")
    train, heldout = target.split(0)
    assert train.dtype == torch.float32 and train.shape == (1438, 64) and heldout.shape == (359, 64)


@pytest.mark.parametrize("source, shape", [("breast_cancer", (569, 30)), ("wine", (178, 13))])
def test_other_bundled_tables(source, shape):
    target = DatasetTarget(source=source)
    assert (target.n_rows, target.dim, target.image_shape) == shape + (None,)
    assert target.dequantize is False  # real-valued measurements: no auto dequantization
    held = math.floor(0.2 * shape[0] + 0.5)  # 569 -> 114 (113.8), 178 -> 36 (35.6)
    assert [len(part) for part in target.split(3)] == [shape[0] - held, held]


def test_split_sizes_disjoint_and_deterministic_per_seed(tmp_path):
    np.save(tmp_path / "rows.npy", indexed_rows(1797))
    target = raw(path=str(tmp_path / "rows.npy"))
    train, heldout = target.split(0)
    # floor(0.2 * 1797 + 0.5) = floor(359.9) = 359 held out (round half up), 1438 train
    assert (len(train), len(heldout)) == (1438, 359)
    ids_train, ids_held = set(train[:, 0].long().tolist()), set(heldout[:, 0].long().tolist())
    assert ids_train.isdisjoint(ids_held) and ids_train | ids_held == set(range(1797))
    again = raw(path=str(tmp_path / "rows.npy")).split(0)
    assert torch.equal(again[0], train) and torch.equal(again[1], heldout)
    other = set(target.split(1)[1][:, 0].long().tolist())
    assert other != ids_held and len(other) == 359


@pytest.mark.parametrize("n, holdout, held", [(10, 0.25, 3), (30, 0.05, 2), (10, 0.01, 1), (20, 0.5, 10)])
def test_holdout_rounds_half_up_and_holds_out_at_least_one_row(tmp_path, n, holdout, held):
    np.save(tmp_path / "rows.npy", indexed_rows(n))
    train, heldout = raw(path=str(tmp_path / "rows.npy"), holdout=holdout).split(0)
    assert (len(train), len(heldout)) == (n - held, held)  # 2.5 -> 3 and 1.5 -> 2: not banker's rounding


def test_standardization_uses_training_rows_only(float64):
    train, heldout = DatasetTarget(source="digits").split(0)
    # dequantized: no column is constant, so every training column is exactly standardized
    assert train.mean(0).abs().max() < 1e-6
    assert (train.std(0, correction=0) - 1).abs().max() < 1e-6
    # the held-out rows are transformed with statistics they did not enter: off by sampling error
    assert heldout.mean(0).abs().max() > 1e-3 and (heldout.std(0, correction=0) - 1).abs().max() > 1e-3


def test_constant_column_is_divided_by_one(float64, digits_rows):
    train, heldout = DatasetTarget(source="digits", dequantize=False).split(0)
    assert torch.isfinite(train).all() and torch.isfinite(heldout).all()
    constant = np.flatnonzero(digits_rows.std(0) == 0)  # pixel 0 (and a few more) is 0 in every image
    assert 0 in constant and (train[:, constant] == 0).all()
    varying = [j for j in range(64) if train[:, j].std() > 0]
    assert (train[:, varying].std(0, correction=0) - 1).abs().max() < 1e-6


def test_dequantized_digits_lie_in_their_unit_cells(float64, digits_rows):
    train, heldout = DatasetTarget(source="digits", standardize=False).split(2)
    rows = torch.cat([train, heldout]).numpy()
    cells = np.floor(rows)
    assert (rows != cells).all()  # no value left an integer
    # each row is an original row v plus U[0, 1) per value: floor gives back exactly the original rows
    assert np.array_equal(sorted_rows(cells), sorted_rows(digits_rows))
    frac = rows - cells  # U[0, 1): mean 1/2 and std 1/sqrt(12) to 4 sigma of 115 008 values
    assert abs(frac.mean() - 0.5) < 4 * (1 / math.sqrt(12)) / math.sqrt(frac.size)


def test_pca_dims_gives_decreasing_training_variances_equal_to_the_top_eigenvalues(float64):
    projected = DatasetTarget(source="digits", dims=10)
    assert projected.dim == 10 and projected.image_shape is None
    train, heldout = projected.split(0)
    assert train.shape == (1438, 10) and heldout.shape == (359, 10)
    variances = train.var(0, correction=0)
    assert (variances[1:] < variances[:-1]).all()
    full = DatasetTarget(source="digits").split(0)[0]  # same rows and noise: dims does not enter the split
    eigen = torch.linalg.eigvalsh(full.T @ full / len(full)).flip(0)[:10]
    assert torch.allclose(variances, eigen, rtol=1e-9)
    assert train.mean(0).abs().max() < 1e-9


def test_split_follows_the_default_dtype_at_call_time():
    target = DatasetTarget(source="wine")
    assert target.split(0)[0].dtype == torch.float32
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert target.split(0)[0].dtype == torch.float64
    finally:
        torch.set_default_dtype(old)


def test_sample_of_finite_data_draws_all_rows_with_seed_zero_statistics(tmp_path):
    np.save(tmp_path / "rows.npy", indexed_rows(50))
    target = DatasetTarget(path=str(tmp_path / "rows.npy"), dequantize=False)
    x = target.sample(2000, torch.Generator().manual_seed(0))
    assert x.shape == (2000, 3) and x.dtype == torch.float32
    assert torch.equal(x, target.sample(2000, torch.Generator().manual_seed(0)))
    train, heldout = target.split(0)  # the same seed-0 standardization: drawn rows are rows of split(0)
    everything = torch.cat([train, heldout])
    match = (x[:, None, :] == everything[None]).all(-1)
    assert match.any(1).all()
    assert match.any(0).all()  # with replacement from all 50 rows, held-out ones included (P(miss) ~ 50 e^-40)


# ---------------------------------------------------------------- generated shapes

def ks_uniform(u: np.ndarray) -> float:
    """``sqrt(n) D`` of ``u`` against U[0, 1]."""
    return math.sqrt(len(u)) * stats.kstest(u, "uniform").statistic


def spacing_cv(u: np.ndarray) -> float:
    """Coefficient of variation of the gaps between sorted draws: ~1 for i.i.d. uniform draws
    (exponential spacings; its std over n draws is ~1/sqrt(n)), 0 for evenly spaced points."""
    gaps = np.diff(np.sort(u))
    return float(gaps.std() / gaps.mean())


def draw(source: str, n: int = 20_000, seed: int = 0, **params) -> np.ndarray:
    target = DatasetTarget(source=source, standardize=False, **params)
    return target.sample(n, torch.Generator().manual_seed(seed)).double().numpy()


def check_uniform_branch(u: np.ndarray, n: int) -> None:
    assert abs(len(u) / n - 0.5) < 4 * 0.5 / math.sqrt(n)  # each point picks its branch with probability 1/2
    assert ks_uniform(u) < KS_LIMIT
    assert abs(spacing_cv(u) - 1) < 0.1  # i.i.d., not a grid (a grid has cv 0)


def test_moons_positions_are_uniform_and_not_evenly_spaced(float64):
    x = draw("moons", noise=0.0)
    upper = np.abs(x[:, 0] ** 2 + x[:, 1] ** 2 - 1) < 1e-9
    lower = np.abs((1 - x[:, 0]) ** 2 + (0.5 - x[:, 1]) ** 2 - 1) < 1e-9
    assert (upper ^ lower).all()
    check_uniform_branch(np.arctan2(x[upper, 1], x[upper, 0]) / math.pi, len(x))
    check_uniform_branch(np.arctan2(0.5 - x[lower, 1], 1 - x[lower, 0]) / math.pi, len(x))


def test_the_spacing_check_rejects_scikit_learns_evenly_spaced_moons():
    from sklearn.datasets import make_moons

    x = make_moons(20_000, noise=0.0, shuffle=False)[0]
    angles = np.arctan2(x[:10_000, 1], x[:10_000, 0]) / math.pi
    assert spacing_cv(angles) < 1e-6  # the grid the i.i.d. generator must not be


def test_circles_angles_are_uniform(float64):
    x = draw("circles", noise=0.0)
    radius = np.hypot(x[:, 0], x[:, 1])
    outer, inner = np.abs(radius - 1) < 1e-9, np.abs(radius - 0.5) < 1e-9  # factor 0.5
    assert (outer ^ inner).all()
    angle = np.mod(np.arctan2(x[:, 1], x[:, 0]), 2 * math.pi) / (2 * math.pi)
    check_uniform_branch(angle[outer], len(x))
    check_uniform_branch(angle[inner], len(x))


def test_swiss_roll_positions_are_uniform(float64):
    x = draw("swiss_roll", noise=0.0)
    t = np.hypot(x[:, 0], x[:, 2])  # (t cos t, h, t sin t) with t in [1.5 pi, 4.5 pi)
    assert np.allclose(x[:, 0], t * np.cos(t)) and np.allclose(x[:, 2], t * np.sin(t))
    assert ks_uniform((t / (1.5 * math.pi) - 1) / 2) < KS_LIMIT and ks_uniform(x[:, 1] / 21) < KS_LIMIT
    assert abs(spacing_cv(t) - 1) < 0.1


def test_s_curve_positions_are_uniform(float64):
    x = draw("s_curve", noise=0.0)
    sign = -np.sign(x[:, 2])  # z = sign(t) (cos t - 1) has the sign opposite to t's
    t = sign * np.mod(np.arctan2(sign * x[:, 0], 1 - np.abs(x[:, 2])), 2 * math.pi)  # t in [-1.5 pi, 1.5 pi)
    assert np.allclose(np.sin(t), x[:, 0]) and np.allclose(sign * (np.cos(t) - 1), x[:, 2])
    assert ks_uniform(t / (3 * math.pi) + 0.5) < KS_LIMIT and ks_uniform(x[:, 1] / 2) < KS_LIMIT
    assert abs(spacing_cv(t) - 1) < 0.1


@pytest.mark.parametrize("source, noise", [("moons", 0.1), ("circles", 0.05), ("swiss_roll", 0.5),
                                           ("s_curve", 0.1)])
def test_noise_is_isotropic_gaussian_with_the_default_std(float64, source, noise):
    n = 20_000
    assert DatasetTarget(source=source).noise == noise
    diff = (draw(source, n) - draw(source, n, noise=0.0)) / noise  # same positions, same stream: z itself
    # per coordinate: mean 0 (std 1/sqrt(n)) and std 1 (std ~ 1/sqrt(2 n)), 4 sigma each
    assert np.abs(diff.mean(0)).max() < 4 / math.sqrt(n)
    assert np.abs(diff.std(0) - 1).max() < 4 / math.sqrt(2 * n)


@pytest.mark.parametrize("source", ["moons", "circles", "swiss_roll", "s_curve"])
def test_generated_shapes_are_deterministic_standardized_and_have_no_split(source):
    target = DatasetTarget(source=source)
    assert not hasattr(target, "split") and not hasattr(target, "n_rows")
    assert not hasattr(target, "score") and not hasattr(target, "log_prob")
    assert target.data_digest is None and target.image_shape is None
    x = target.sample(100_000, torch.Generator().manual_seed(1))
    assert x.dtype == torch.float32 and x.shape == (100_000, target.dim)
    assert torch.equal(x, target.sample(100_000, torch.Generator().manual_seed(1)))
    assert not torch.equal(x[:10], target.sample(10, torch.Generator().manual_seed(2)))
    # standardized with the statistics of an independent pilot of 1e5 points: the sample mean minus the
    # pilot's has std sqrt(2 / 1e5) in std units; the sample std over the pilot's has std
    # sqrt(2 (kurtosis - 1) / (4 n)) <= sqrt(2 / 1e5) for these shapes (kurtosis <= 3); 5 sigma each
    tol = 5 * math.sqrt(2 / 100_000)
    assert x.double().mean(0).abs().max() < tol
    assert (x.double().std(0) - 1).abs().max() < tol


def test_generated_shape_projected_on_principal_components():
    target = DatasetTarget(source="swiss_roll", dims=2)
    x = target.sample(50_000, torch.Generator().manual_seed(0)).double()
    assert target.dim == 2 and x.shape == (50_000, 2)
    assert x.var(0)[0] > x.var(0)[1]


def test_draw_function_matches_the_target():
    generator = torch.Generator().manual_seed(5)
    expected = draw_moons(100, generator, 0.1)
    got = DatasetTarget(source="moons", standardize=False).sample(100, torch.Generator().manual_seed(5))
    assert torch.allclose(got.double(), expected, atol=1e-6)


def test_registry_builds_the_target():
    from bench_core.components.discovery import get_registry

    registry = get_registry()  # built in: registered like any plugin
    target = registry.create("targets", "dataset", source="moons")
    assert target.dim == 2 and not hasattr(target, "split")
    wine = pickle.loads(pickle.dumps(registry.create("targets", "dataset", source="wine")))  # as sent to a worker
    assert wine.split(0)[0].shape == (142, 13)


# ---------------------------------------------------------------- user files

def write_rows(path, rows: np.ndarray, kind: str) -> None:
    if kind == "npy":
        np.save(path, rows)
    elif kind == "npz":
        np.savez(path, rows=rows)
    elif kind == "csv":
        np.savetxt(path, rows, delimiter=",", fmt="%.17g")
    elif kind == "csv_header":
        np.savetxt(path, rows, delimiter=",", fmt="%.17g", header="a,b,c", comments="")
    elif kind == "csv_spaces":
        np.savetxt(path, rows, fmt="%.17g")
    elif kind == "pt":
        torch.save(torch.from_numpy(rows), path)


@pytest.mark.parametrize("kind", ["npy", "npz", "csv", "csv_header", "csv_spaces", "pt"])
def test_user_file_round_trip_and_digest(tmp_path, float64, kind):
    path = tmp_path / f"rows.{kind.split('_')[0]}"
    rows = indexed_rows(40)
    write_rows(path, rows, kind)
    target = raw(path=str(path))
    assert (target.n_rows, target.dim, target.image_shape) == (40, 3, None)
    assert target.data_digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert np.array_equal(sorted_rows(torch.cat(target.split(0)).numpy()), rows)  # exact, even the csv
    rows[5, 1] += 1.0
    write_rows(path, rows, kind)
    changed = raw(path=str(path))
    assert changed.data_digest == hashlib.sha256(path.read_bytes()).hexdigest() != target.data_digest


def test_npz_key_chooses_the_array(tmp_path):
    np.savez(tmp_path / "two.npz", a=indexed_rows(20), b=indexed_rows(30, d=5))
    target = raw(path=str(tmp_path / "two.npz"), key="b")
    assert (target.n_rows, target.dim) == (30, 5)


def test_relative_path_is_read_from_the_suite_folder(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "rows.npy", indexed_rows(20))
    monkeypatch.chdir("/")
    with suite_directory(tmp_path / "suite.toml"):
        assert raw(path="data/rows.npy").n_rows == 20


def test_integer_file_is_dequantized_by_default_and_image_shape_checked(tmp_path):
    np.save(tmp_path / "pixels.npy", np.random.default_rng(0).integers(0, 255, size=(30, 12)))
    target = DatasetTarget(path=str(tmp_path / "pixels.npy"), image_shape=[3, 4])
    assert target.dequantize is True and target.image_shape == (3, 4)


# ---------------------------------------------------------------- bad input

def expect_error(match_parts, **params):
    with pytest.raises(ValueError) as info:
        DatasetTarget(**params)
    for part in match_parts:
        assert part in str(info.value), str(info.value)
    return str(info.value)


def test_missing_file(tmp_path):
    expect_error(["nothere.npy", "no such file", "check the path"], path=str(tmp_path / "nothere.npy"))


@pytest.mark.parametrize("shape, fix", [((20,), "x.reshape(-1, 1)"), ((20, 4, 5), "image_shape = [4, 5]")])
def test_arrays_that_are_not_rows(tmp_path, shape, fix):
    np.save(tmp_path / "bad.npy", np.zeros(shape))
    expect_error(["bad.npy", f"{len(shape)}-D array", fix], path=str(tmp_path / "bad.npy"))


def test_nan_and_inf_rows_are_counted(tmp_path):
    rows = indexed_rows(20)
    rows[3, 1], rows[7, 2], rows[12, 0] = np.nan, np.inf, -np.inf
    np.save(tmp_path / "holes.npy", rows)
    expect_error(["holes.npy", "3 of its 20 rows hold NaN or inf", "first is row 3", "remove or impute"],
                 path=str(tmp_path / "holes.npy"))


def test_non_numeric_csv(tmp_path):
    (tmp_path / "words.csv").write_text("a,b\n1,2\n3,x\n" + "4,5\n" * 10)
    expect_error(["words.csv", "not a number", "only numbers"], path=str(tmp_path / "words.csv"))


def test_pt_that_is_not_a_tensor(tmp_path):
    with open(tmp_path / "pickled.pt", "wb") as f:
        pickle.dump({"rows": np.zeros((20, 2))}, f)
    expect_error(["pickled.pt", "weights_only=True", "torch.save(x, path)"], path=str(tmp_path / "pickled.pt"))
    torch.save({"rows": torch.zeros(20, 2)}, tmp_path / "dict.pt")
    expect_error(["dict.pt", "holds a dict, not a torch.Tensor", "torch.save(x, path)"],
                 path=str(tmp_path / "dict.pt"))


def test_npz_with_several_arrays_needs_a_key(tmp_path):
    np.savez(tmp_path / "two.npz", a=indexed_rows(20), b=indexed_rows(20))
    expect_error(["two.npz", "2 arrays (a, b)", "key = "], path=str(tmp_path / "two.npz"))
    expect_error(["two.npz", "no array 'c'", "a, b"], path=str(tmp_path / "two.npz"), key="c")


def test_unknown_source_suggests_the_closest():
    message = expect_error(["'digts'", "did you mean 'digits'", "moons", "'path'"], source="digts")
    assert "swiss_roll" in message


def test_image_shape_must_match_dim(tmp_path):
    expect_error(["image_shape", "[7, 9]", "63", "dim = 64"], source="digits", image_shape=[7, 9])
    np.save(tmp_path / "rows.npy", indexed_rows(20, d=6))
    expect_error(["rows.npy", "[2, 2]", "4 pixels", "dim = 6"], path=str(tmp_path / "rows.npy"),
                 image_shape=[2, 2])
    expect_error(["'dims'", "remove"], source="digits", dims=4, image_shape=[2, 2])


def test_fewer_than_ten_rows(tmp_path):
    np.save(tmp_path / "tiny.npy", indexed_rows(9))
    expect_error(["tiny.npy", "9 rows, fewer than 10", "at least 10"], path=str(tmp_path / "tiny.npy"))


@pytest.mark.parametrize("holdout", [0.0, 1.0, 1.5, -0.1, True])
def test_holdout_outside_the_open_unit_interval(holdout):
    expect_error(["'holdout'", "open interval (0, 1)"], source="wine", holdout=holdout)


def test_holdout_leaving_no_training_row(tmp_path):
    np.save(tmp_path / "rows.npy", indexed_rows(10))
    expect_error(["rows.npy", "holds out 10 of the 10", "lower 'holdout'"], path=str(tmp_path / "rows.npy"),
                 holdout=0.99)


def test_params_that_do_not_apply(tmp_path):
    np.save(tmp_path / "rows.npy", indexed_rows(20))
    expect_error(["'source' and 'path'", "exactly one", "both"], source="wine", path=str(tmp_path / "rows.npy"))
    expect_error(["'source' and 'path'", "exactly one", "neither"])
    expect_error(["'noise'", "moons", "remove"], source="wine", noise=0.1)
    expect_error(["'key'", ".npz", "rows.npy", "remove"], path=str(tmp_path / "rows.npy"), key="x")
    expect_error(["'holdout'", "moons", "remove"], source="moons", holdout=0.3)
    expect_error(["'dequantize'", "remove"], source="moons", dequantize=True)
    expect_error(["'dims' = 3", "dims <= 2"], source="moons", dims=3)
    expect_error(["'dims' = 65", "dims <= 64"], source="digits", dims=65)
    expect_error(["'noise'", ">= 0"], source="moons", noise=-1.0)


def test_missing_scikit_learn_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn", None)  # `from sklearn import ...` now raises ImportError
    expect_error(["source 'digits' needs scikit-learn: pip install 'bench[datasets]'"], source="digits")
    assert DatasetTarget(source="moons").dim == 2  # the shapes need no scikit-learn
