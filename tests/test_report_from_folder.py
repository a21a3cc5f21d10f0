"""The report reads only the results folder: run.json records the trained networks and the folder keeps their
loss curves, so a copied folder shows them without the suite file or the network cache, and says what is
missing when a curve (or the record) is gone."""
from __future__ import annotations

import html
import json
import re
import shutil
import textwrap
from pathlib import Path

from bench_core.cli import main

SUITE = """
[suite]
name = "from_folder"
seeds = [0]
n_samples = 60
device = "cpu"

[data]
n_train = 20

[[targets]]
name = "gaussian"
params = { dim = 2 }

[[scores]]
name = "ddpm_mlp"
params = { width = 8, depth = 1, levels = 100 }
grid = { epochs = [3, 6] }

[[samplers]]
name = "ula"
params = { n_steps = 10 }

[[metrics]]
name = "gaussian_kl"
"""
LOSS_FIGURE = "DDPM training loss of each network"


def _report(folder: Path) -> str:
    assert main(["report", str(folder)]) == 0
    return html.unescape((folder / "report.html").read_text(encoding="utf-8"))


def _section4(page: str) -> str:
    match = re.search(r'<h2 id="view-section4">(.*?)(?=<h2 |</body>)', page, re.S)
    assert match, "the learned-score view is missing"
    return match.group(1)


def test_a_copied_folder_shows_the_loss_curves_without_suite_or_cache(tmp_path, monkeypatch):
    cache, out, copy = tmp_path / "cache", tmp_path / "out", tmp_path / "elsewhere" / "copy"
    monkeypatch.setenv("BENCH_CACHE", str(cache))  # restored after the test (--cache sets it for the process)
    suite = tmp_path / "suite.toml"
    suite.write_text(textwrap.dedent(SUITE))
    assert main(["run", str(suite), "--out", str(out), "--cache", str(cache), "--workers", "1"]) == 0

    [net] = json.loads((out / "run.json").read_text())["networks"]  # one network, snapshots at 3 and 6 epochs
    assert Path(net["entry"]).is_absolute() and Path(net["entry"]).is_relative_to(cache.resolve())
    assert net["snapshots"] == [3, 6] and net["loss_curve"] == f"networks/{net['key']}/loss.csv"
    assert sorted(json.loads(u["score_params"])["epochs"] for u in net["uses"]) == [3, 6]
    assert {(u["target"], u["score"], u["seed"]) for u in net["uses"]} == {("gaussian", "ddpm_mlp", 0)}
    curve = (out / net["loss_curve"]).read_text().splitlines()
    assert curve[0] == "epoch,loss" and [line.split(",")[0] for line in curve[1:]] == ["1", "2", "3", "4", "5", "6"]

    shutil.copytree(out, copy)
    suite.unlink()
    shutil.rmtree(cache)
    shutil.rmtree(out)
    body = _section4(_report(copy))
    assert LOSS_FIGURE in body and "not shown" not in body

    shutil.rmtree(copy / "networks")  # the recorded curves are gone: the page says so and still renders
    page = _report(copy)
    body = _section4(page)
    assert LOSS_FIGURE not in body and "memorization curve" in body
    assert "Training loss curves not shown: 1 loss curve(s) missing from the results folder" in body
    assert net["loss_curve"] in body
    assert 'id="provenance"' in page

    info = json.loads((copy / "run.json").read_text())
    del info["networks"]  # a folder written before networks were recorded
    (copy / "run.json").write_text(json.dumps(info))
    body = _section4(_report(copy))
    assert "Training loss curves not shown: run.json has no record of the trained networks" in body
