"""``ddpm_mlp``: training (Ho et al. 2020, Algorithm 1), the cache and its keys, reading the network."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench_core.base.artifact_cache import CacheEntry
from bench_core.plan.training_data import make_training_data
from bench_core.pipeline import run_suite
from bench_core.suite.parsed import ComponentSpec
from bench_plugins.scores.learned import ddpm_training
from bench_plugins.samplers.schedules import level_times
from bench_plugins.scores.learned.ddpm_mlp import DDPMMLPScore
from bench_plugins.scores.learned.ddpm_training import snapshot_name
from bench_plugins.scores.learned.network import make_network_score
from bench_plugins.targets.gaussian import GaussianTarget
from helpers import run_cli

REPO = Path(__file__).parents[1]


def training_data(seed: int = 0, n_train: int = 64, duplicate: int = 2, dim: int = 3, mean: float = 0.0):
    target = GaussianTarget(dim, mean=mean)
    spec = ComponentSpec("targets", "gaussian", (("dim", dim), ("mean", mean)))
    return target, make_training_data(target, spec, seed, n_train, duplicate, "cpu")


def key(**changes) -> str:
    data_args = {k: changes.pop(k) for k in ("seed", "n_train", "duplicate", "mean") if k in changes}
    target, data = training_data(**data_args)
    params = {"width": 16, "epochs": 10, **changes}
    return DDPMMLPScore(target, data, **params).training_job().key


def test_cache_key_changes_exactly_when_it_should(monkeypatch, tmp_path):
    base = key()
    # the snapshot axis and the read-out do not change the weights
    assert key(epochs=20) == base and key(readout=5) == base
    # every training param, and everything that changes the training rows, does
    changed = [key(width=32), key(depth=2), key(lr=3e-4), key(batch=16), key(levels=200), key(embed=16),
               key(train_seed=1), key(seed=1), key(n_train=65), key(duplicate=3), key(mean=0.5)]
    assert len({base, *changed}) == len(changed) + 1
    # the cache root does not (several suites and folders share entries)
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "elsewhere"))
    assert key() == base
    # the code of the training module does
    copy = tmp_path / "ddpm_training.py"
    copy.write_text(Path(ddpm_training.__file__).read_text() + "\n# changed\n")
    monkeypatch.setattr(ddpm_training, "__file__", str(copy))
    assert key() != base


def tiny_job(epochs: int, root: Path, **params):
    target, data = training_data()
    os.environ["BENCH_CACHE"] = str(root)
    return DDPMMLPScore(target, data, width=16, epochs=epochs, **params).training_job()


def weights(job, epochs: int) -> dict:
    return torch.load(job.entry.snapshot_path(snapshot_name(epochs)) / "weights.pt", weights_only=True)


def test_training_is_bit_identical_and_a_resumed_run_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path))
    straight = tiny_job(60, tmp_path / "a")
    straight.merged(tiny_job(30, tmp_path / "a")).run()  # one run, snapshots at 30 and 60
    again = tiny_job(60, tmp_path / "b")
    again.run()
    resumed_first = tiny_job(30, tmp_path / "c")
    resumed_first.run()
    resumed = tiny_job(60, tmp_path / "c")
    assert resumed.missing() == [60]
    resumed.run()
    for other in (again, resumed):
        w0, w1 = weights(straight, 60), weights(other, 60)
        assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert all(torch.equal(a, b) for a, b in zip(weights(straight, 30).values(), weights(resumed_first, 30).values()))
    curve = pd.read_csv(straight.entry.snapshot_path(snapshot_name(60)) / "loss.csv")
    assert list(curve.epoch) == list(range(1, 61))
    assert curve.equals(pd.read_csv(resumed.entry.snapshot_path(snapshot_name(60)) / "loss.csv"))
    model = json.loads((straight.entry.snapshot_path(snapshot_name(60)) / "model.json").read_text())
    assert model["model"] == "bench_plugins.scores.learned.eps_mlp:EpsMLP" and model["epochs"] == 60


def test_a_killed_writer_never_leaves_a_finished_snapshot(tmp_path):
    entry = CacheEntry("ddpm_mlp", "k" * 32, {"x": 1}, tmp_path)

    def half_written(folder: Path) -> None:
        (folder / "weights.pt").write_bytes(b"partial")
        raise KeyboardInterrupt

    with entry.lock(), pytest.raises(KeyboardInterrupt):
        entry.write_snapshot("epochs_000000010", half_written)
    assert entry.snapshots() == [] and not entry.has("epochs_000000010")
    # a SIGKILLed writer leaves its temporary folder behind: never listed, removed at the next lock
    (entry.path / ".tmp-epochs_000000010-dead").mkdir()
    (entry.path / ".tmp-epochs_000000010-dead" / "weights.pt").write_bytes(b"partial")
    assert entry.snapshots() == []
    with entry.lock():
        assert not list(entry.path.glob(".tmp-*"))


SIGKILL_SCRIPT = """
import os, sys
sys.path.insert(0, {tests!r})
from test_ddpm_mlp import tiny_job
from pathlib import Path
job = tiny_job(10_000_000, Path({root!r}), levels=1000)
job.run()
"""


def test_sigkill_during_training_leaves_no_finished_looking_entry(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", SIGKILL_SCRIPT.format(tests=str(REPO / "tests"),
                                                                        root=str(tmp_path))],
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    line = proc.stderr.readline()  # "training ddpm_mlp ... from epoch 0 to 10000000 -> <entry>"
    assert line.startswith("training ddpm_mlp"), line
    time.sleep(1.0)  # well into the epochs
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    job = tiny_job(10_000_000, tmp_path, levels=1000)
    assert job.entry.path.is_dir() and job.entry.snapshots() == [] and job.missing() == [10_000_000]


def test_levels_outside_the_trained_ones_fail_the_cell_and_name_them(write_suite, tmp_path):
    path = write_suite("""
        [suite]
        name = "levels"
        seeds = [0]
        n_samples = 50
        device = "cpu"

        [data]
        n_train = 32

        [[targets]]
        name = "gaussian"
        params = { dim = 2 }

        [[scores]]
        name = "ddpm_mlp"
        params = { width = 8, epochs = 5 }

        [[samplers]]
        name = "ddpm"
        params = { n_steps = 100 }

        [[metrics]]
        name = "mean_error"
    """)
    summary = run_suite(path, out=tmp_path / "out")
    assert summary.statuses.get("failed") == 1
    reason = pd.read_csv(tmp_path / "out" / "results.csv")["reason"].iloc[0]
    assert "trained on levels 1..100" in reason and "levels = 1000" in reason


ONCE_SUITE = """
[suite]
name = "once"
seeds = [0]
n_samples = 200
device = "cpu"

[data]
n_train = 64
duplicate = 2

[[targets]]
name = "gaussian"
params = { dim = 3 }

[[scores]]
name = "ddpm_mlp"
params = { width = 16, levels = 1000 }
grid = { epochs = [20, 40], readout = [5, 10] }

[[initializers]]
name = "train"
params = { distinct = 5 }

[[samplers]]
name = "ula"
params = { n_steps = 50 }

[[samplers]]
name = "ddpm"
params = { n_steps = 100 }

[[metrics]]
name = "score_error"
params = { n_mc_bar = 200 }
"""


def test_process_executor_trains_once_and_a_rerun_loads_and_reproduces(write_suite, tmp_path):
    path = write_suite(ONCE_SUITE)
    env = {**os.environ, "BENCH_CACHE": str(tmp_path / "cache")}

    def bench(out: str) -> subprocess.CompletedProcess:
        return run_cli("run", path, "--out", tmp_path / out, "--executor", "process", "--workers", "2", env=env)

    first = bench("one")
    assert first.returncode == 0, first.stderr
    # four score specs (2 epochs x 2 readouts), one network: trained once, to 40 epochs, snapshot at 20
    starts = [ln for ln in first.stderr.splitlines() if ln.startswith("training ddpm_mlp")]
    assert len(starts) == 1 and "from epoch 0 to 40" in starts[0], first.stderr
    second = bench("two")
    assert second.returncode == 0, second.stderr
    assert "training" not in second.stderr and "cached, loaded from" in second.stderr
    a, b = (pd.read_csv(tmp_path / d / "results.csv") for d in ("one", "two"))
    assert a[["cell", "metric"]].equals(b[["cell", "metric"]]) and a["value"].equals(b["value"])


def test_cached_weights_load_through_network_and_give_the_same_scores(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path))
    target, data = training_data()
    score = DDPMMLPScore(target, data, width=16, epochs=30, levels=1000)
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
    reads = {t: score(x, t) for t in (0.0, level_times()[0], 0.3, level_times()[-1])}
    described = json.loads((score.snapshot / "model.json").read_text())
    network = make_network_score(target, data, model=described["model"], kwargs=described["kwargs"],
                                 weights=described["weights"], output=described["output"], time=described["time"])
    for t, value in reads.items():
        assert torch.equal(network(x, t), value)
    # t = 0 is level 10: -eps_theta(x, 10) / sqrt(1 - abar_10) = -22.97 eps_theta
    eps10 = score.model_score().model(x, torch.full((40,), 10.0))
    torch.testing.assert_close(reads[0.0], -22.973060718530906 * eps10, rtol=1e-6, atol=1e-6)


def test_the_t0_read_out_approaches_the_exact_score_as_epochs_grow(tmp_path, monkeypatch):
    """N(1, I_2) with 4000 distinct training points: they are ~0.03 apart, below the level-10 noise scale
    sigma_10 = 0.0435, so the DDPM loss is minimized by (nearly) the population score, and the level-10
    read-out of p_{t_10} = N(e^{-t_10} 1, I) is within 1e-3 of the score of pi. lr = 3e-4 (full-batch Adam
    at 1e-3 oscillates around a 0.05 floor). Weights are bit-identical on CPU, so these are exact
    re-measurements, not samples; over train_seed 0..3 the relative errors at 300 / 1000 / 3000 epochs
    were 3.7-5.2 / 0.13-0.28 / 0.016-0.059 when written."""
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path))
    target = GaussianTarget(2, mean=1.0)
    data = make_training_data(target, ComponentSpec("targets", "gaussian", (("dim", 2),)), 0, 4000, 1, "cpu")
    marks = (300, 1000, 3000)
    scores = [DDPMMLPScore(target, data, width=32, epochs=e, lr=3e-4) for e in marks]
    job = scores[0].training_job()
    for s in scores[1:]:
        job = job.merged(s.training_job())
    job.run()
    x = target.sample(5000, torch.Generator().manual_seed(5))
    exact = target.score(x)
    rel = [float((s(x, 0.0) - exact).pow(2).sum(-1).mean() / exact.pow(2).sum(-1).mean()) for s in scores]
    assert rel[0] > rel[1] > rel[2], rel
    assert rel[2] < 0.1, rel


def test_an_unwritable_cache_is_one_clean_line_before_anything_runs(write_suite, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    path = write_suite(ONCE_SUITE)
    result = run_cli("run", path, "--out", tmp_path / "o", "--cache", blocker / "cache")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write the network cache" in lines[0] and "--cache DIR" in lines[0]


def test_training_randomness_does_not_depend_on_the_code_hash(tmp_path, monkeypatch):
    """A change of code that leaves the arithmetic alone gets a new cache entry but the same weights,
    so numbers measured before a refactor are reproduced after it."""
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "a"))
    target, data = training_data()
    before = DDPMMLPScore(target, data, width=16, epochs=20)
    copy = tmp_path / "ddpm_training.py"
    copy.write_text(Path(ddpm_training.__file__).read_text() + "\n# a comment\n")
    monkeypatch.setattr(ddpm_training, "__file__", str(copy))
    after = DDPMMLPScore(target, data, width=16, epochs=20)
    assert after.training_job().key != before.training_job().key
    assert after.training_job().seed_key == before.training_job().seed_key
    before.training_job().run()
    after.training_job().run()
    w0, w1 = (torch.load(s.snapshot / "weights.pt", weights_only=True) for s in (before, after))
    assert all(torch.equal(w0[k], w1[k]) for k in w0)


def test_lazy_training_inside_a_float64_cell_trains_float32_weights(tmp_path, monkeypatch, float64):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path))
    target, data = training_data()
    score = DDPMMLPScore(target, data, width=8, epochs=3)
    x = torch.randn(5, 3, dtype=torch.float64)
    out = score(x, 0.0)  # trains here, under the cell's float64 default dtype
    assert out.dtype == torch.float64
    weights = torch.load(score.snapshot / "weights.pt", weights_only=True)
    assert all(w.dtype == torch.float32 for w in weights.values())


def test_a_packed_cache_entry_installs_identically_on_another_disk(tmp_path, monkeypatch):
    from bench_core.base.artifact_cache import CacheEntry, install_entry, pack_entry

    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "driver"))
    entry = CacheEntry("ddpm_mlp", "k" * 16, {"width": 16})
    with entry.lock():
        for name in ("epochs_000000020", "epochs_000000040"):
            entry.write_snapshot(name, lambda folder, name=name: (folder / "weights.pt").write_bytes(name.encode() * 99))
    (entry.path / ".tmp-epochs_000000060-dead").mkdir()  # a killed writer's leftover is not shipped
    blob = pack_entry("ddpm_mlp/" + "k" * 16)

    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "worker"))
    installed = install_entry("ddpm_mlp/" + "k" * 16, blob)
    assert installed == tmp_path / "worker" / "ddpm_mlp" / ("k" * 16)
    assert CacheEntry("ddpm_mlp", "k" * 16, {}).snapshots() == ["epochs_000000020", "epochs_000000040"]
    for name in ("epochs_000000020", "epochs_000000040"):
        assert (installed / name / "weights.pt").read_bytes() == (entry.path / name / "weights.pt").read_bytes()
    assert json.loads((installed / "spec.json").read_text()) == {"width": 16}
    assert install_entry("ddpm_mlp/" + "k" * 16, blob) == installed  # a second install changes nothing


def test_ray_executor_trains_once_and_matches_the_local_run(write_suite, tmp_path, ray_address):
    from bench_core.pipeline import run_suite

    path = write_suite(ONCE_SUITE)
    run_suite(path, out=tmp_path / "local")
    summary = run_suite(path, out=tmp_path / "ray", executor="ray", workers=2, address=ray_address)
    assert summary.statuses == {"done": summary.n_cells}
    a, b = (pd.read_csv(tmp_path / d / "results.csv") for d in ("local", "ray"))
    assert a[["cell", "metric"]].equals(b[["cell", "metric"]]) and a["value"].equals(b["value"])
