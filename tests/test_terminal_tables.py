"""`bench show` fits an 80- or 120-column terminal: wide tables are split (keys repeated) or wrapped,
never cut off."""
from __future__ import annotations

import pandas as pd
import pytest

from bench_core import cli
from bench_core.pipeline import run_suite
from bench_core.report.terminal_tables import fit_table, wrap_text
from conftest import BASE_SUITE


def _wide_table() -> pd.DataFrame:
    rows = []
    for i in range(6):
        row = {"rank": i + 1, "score": f"noisy(bandwidth=7.0710678, eps={i})", "sampler": "ula(n_steps=1000, step_size=0.0025)"}
        row.update({f"metric_{j}.value": f"v{i}_{j} ± 0.01" for j in range(12)})
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("width", [80, 120])
def test_a_wide_table_is_split_with_its_keys_repeated_and_nothing_cut(width):
    table = _wide_table()
    text = fit_table(table, width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    parts = text.split("\n\n")
    assert len(parts) > 1 and all(p.startswith("(part ") for p in parts)
    assert all("rank" in p and "score" in p and "sampler" in p for p in parts)  # keys in every part
    for i in range(6):  # every value appears whole
        for j in range(12):
            assert f"v{i}_{j} ± 0.01" in text
    assert all(f"metric_{j}.value" in text for j in range(12))


def test_an_entry_wider_than_the_terminal_is_wrapped_not_cut():
    table = pd.DataFrame({"sampler": ["ula"], "entry": ["TV[wit] 0.998 ± 0.0021 · Δ +0.998 · ε₀² ≤1e-14 · ε̄² 0 " * 3]})
    text = fit_table(table, 80, keys=("sampler",))
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "".join(text.split()).count("TV[wit]") == 3
    assert wrap_text("word " * 40, 30).count("\n") >= 5


def test_bench_show_fits_the_width(write_suite, tmp_path, capsys):
    path = write_suite(BASE_SUITE.replace("[suite]", '[suite]\nleaderboard_metrics = ["mean_error", "gaussian_kl", "radius"]')
                       + '\n[[metrics]]\nname = "gaussian_kl"\n[[metrics]]\nname = "radius"\n')
    run_suite(path, out=tmp_path / "out")
    capsys.readouterr()
    for width in (80, 120):
        assert cli.main(["show", str(tmp_path / "out"), "--width", str(width)]) == 0
        out = capsys.readouterr().out
        assert max(len(line) for line in out.splitlines()) <= width
        assert "gaussian_kl" in out and "mean_error" in out and "radius.rel_gap" in out
    assert cli.main(["show", str(tmp_path / "out"), "--width", "20"]) == 2
    assert "too narrow" in capsys.readouterr().err
