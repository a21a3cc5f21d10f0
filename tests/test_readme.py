"""The README's plugin example runs as written and passes the conformance kit."""
from __future__ import annotations

import re
import types
from pathlib import Path

from bench_core.components.discovery import build_registry
from bench_core.kit import check_sampler

README = (Path(__file__).parents[1] / "README.md").read_text()


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_starts_with_the_two_commands():
    first, second = code_blocks("bash")[:2]
    assert "pip install torch==2.13.0" in first and "bench run suites/" in first
    assert 'pip install -e ".[test]"' in second and "python -m pytest" in second
    assert README.index("```bash") < 20


def test_plugin_example_registers_and_conforms():
    source = next(b for b in code_blocks("python") if "class TemperedULA" in b)
    module = types.ModuleType("my_bench_sampler")
    exec(compile(source, "README.md", "exec"), module.__dict__)
    registry = build_registry(extra=[module], entry_points=False)
    sampler = registry.create("samplers", "tempered_ula", step_size=0.01, n_steps=500)
    check_sampler(sampler)


def test_network_example_trains_and_runs_as_written(tmp_path, monkeypatch):
    """The README's `network` example: train the model with its own script, run the suite next to it."""
    import subprocess
    import sys

    import pandas as pd

    from bench_core.pipeline import run_suite

    module = next(b for b in code_blocks("python") if "class ScoreNet" in b)
    suite = next(b for b in code_blocks("toml") if 'name = "my_network"' in b)
    (tmp_path / "my_score_net.py").write_text(module)
    (tmp_path / "my_suite.toml").write_text(suite)
    subprocess.run([sys.executable, "my_score_net.py"], cwd=tmp_path, check=True)
    assert (tmp_path / "score_net.pt").is_file()
    monkeypatch.syspath_prepend(str(tmp_path))
    summary = run_suite(tmp_path / "my_suite.toml", out=tmp_path / "out")
    assert summary.statuses == {"done": 2}
    df = pd.read_csv(tmp_path / "out" / "results.csv")
    kl = df[df.metric == "gaussian_kl"].set_index("score")["value"]
    # 2n KL ~ chi^2_5 for exact samples (mean 5/(2n) = 1.3e-3); the trained network is close to the exact score
    assert kl["exact"] < 0.01 and kl["network"] < 0.1, kl


def test_suite_file_example_validates(tmp_path):
    from bench_core.pipeline import plan_suite

    example = next(b for b in code_blocks("toml") if "[[claims]]" in b and "versus" in b)
    (tmp_path / "example.toml").write_text(example)
    plan = plan_suite(tmp_path / "example.toml")
    assert len(plan.suite.claims) == 2 and plan.suite.claims[1].versus == (("sampler.step_size", 0.01),)


def test_your_data_example_runs_as_written(tmp_path, monkeypatch):
    """The README's "Your data" example: save the rows with its script, run its suite next to the file."""
    import subprocess
    import sys

    import pandas as pd

    from bench_core.pipeline import run_suite

    script = next(b for b in code_blocks("python") if "my_samples.npy" in b)
    suite = next(b for b in code_blocks("toml") if 'name = "my_data"' in b)
    (tmp_path / "save_rows.py").write_text(script)
    (tmp_path / "my_data.toml").write_text(suite)
    subprocess.run([sys.executable, "save_rows.py"], cwd=tmp_path, check=True)
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    summary = run_suite(tmp_path / "my_data.toml", out=tmp_path / "out")
    assert summary.statuses == {"done": 4} and summary.exit_code == 0
    df = pd.read_csv(tmp_path / "out" / "results.csv")
    ratio = df[df.metric == "nearest_train.ratio"].groupby("score")["value"].mean()
    # DDPM with the empirical score returns training rows (distance ~0, ratio ~0); the network's samples
    # are about as far from the training rows as held-out rows are (ratio near 1)
    assert ratio["empirical"] < 0.05 and ratio["ddpm_mlp"] > 0.5, ratio
