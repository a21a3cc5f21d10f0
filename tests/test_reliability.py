"""Faults injected one at a time: each cell ends failed or diverged with a one-line reason naming
the component, the run goes on, nothing is lost; exports are atomic; one run per output folder."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest

from bench_core.base.atomic_files import write_atomic
from bench_core.base.errors import BenchError
from bench_core.run.folder_lock import run_lock
from bench_core.pipeline import run_suite
from conftest import BASE_SUITE
from helpers import cli_command, plugins_env, run_cli

FAULTS = """
[[samplers]]
name = "toy_faulty"
grid = { fault = ["exit", "float64", "shape", "list", "device", "alloc", "nan_at"] }
"""


def test_every_injected_sampler_fault_is_a_recorded_cell(write_suite, tmp_path, toy_registry):
    path = write_suite(BASE_SUITE.replace('seeds = [0, 1]', 'seeds = [0]') + FAULTS)
    summary = run_suite(path, out=tmp_path / "out", registry=toy_registry)
    assert summary.exit_code == 1  # the run went on and says cells failed
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    errors = results[results["metric"] == "error"].copy()
    errors["fault"] = errors["sampler_params"].str.extract(r"\"fault\":\s*\"(\w+)\"")[0]
    reason = dict(zip(errors["fault"], errors["reason"]))
    status = dict(zip(errors["fault"], errors["status"]))
    assert set(reason) == {"exit", "float64", "shape", "list", "device", "alloc", "nan_at"}
    assert all("\n" not in r for r in reason.values())
    assert "sys.exit" in reason["exit"] and "sampler 'toy_faulty'" in reason["exit"]
    assert "float64 particles in a float32 suite" in reason["float64"]
    assert "shape [200, 1], expected [200, 3]" in reason["shape"]
    assert "returned list" in reason["list"]
    assert "on meta, expected cpu" in reason["device"]
    assert "toy_plugins.py" in reason["alloc"]  # the plugin's file and line
    assert status["nan_at"] == "diverged" and "step 3" in reason["nan_at"]
    # the exact sampler of the same suite is unaffected; full tracebacks are in errors.log
    assert (results[(results["sampler"] == "ula") & (results["metric"] == "mean_error")]["status"] == "done").all()
    log = (tmp_path / "out" / "errors.log").read_text()
    assert log.count("=== ") == 6 and "Traceback (most recent call last)" in log


def test_an_interrupted_export_leaves_the_old_file(tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("old,complete\n")

    def killed_midway(tmp):
        tmp.write_text("new,half")
        raise KeyboardInterrupt  # as a kill during the write would

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, killed_midway)
    assert target.read_text() == "old,complete\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]  # no temporary left behind
    write_atomic(target, lambda tmp: tmp.write_text("new,complete\n"))
    assert target.read_text() == "new,complete\n"


def test_a_second_run_on_the_same_folder_refuses_at_once(write_suite, tmp_path):
    path = write_suite()
    out = tmp_path / "out"
    out.mkdir()
    with run_lock(out):  # a first run holds the folder
        start = time.monotonic()
        second = run_cli("run", path, "--out", out, timeout=120)
        assert time.monotonic() - start < 60
    assert second.returncode == 2
    line = second.stderr.strip().splitlines()[-1]
    assert str(out) in line and f"pid {os.getpid()}" in line
    assert not (out / "results.sqlite").exists()  # it touched nothing
    # the other order: the in-process run refuses while a subprocess run holds the folder
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from bench_core.run.folder_lock import run_lock\n"
                               "with run_lock(Path(sys.argv[1])):\n print('held', flush=True); time.sleep(60)",
                               str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BenchError, match=f"pid {holder.pid}"):
            run_suite(path, out=out)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # a holder killed by SIGKILL leaves no stale lock: the run proceeds and completes
    summary = run_suite(path, out=out)
    assert summary.statuses == {"done": 2}
    with sqlite3.connect(out / "results.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


TIMEOUTS = BASE_SUITE.replace("seeds = [0, 1]", "seeds = [0]\ncell_timeout = 1") + """
[[samplers]]
name = "toy_faulty"
grid = { fault = ["sleep", "spin", "slow_steps"] }
"""
PLUGIN_ENV = {"BENCH_PLUGIN_MODULES": "toy_plugins"}


def _timeout_reasons(out):
    results = pd.read_csv(out / "results.csv")
    errors = results[results["metric"] == "error"]
    reasons = dict(zip(errors["sampler_params"].str.extract(r"\"fault\":\s*\"(\w+)\"")[0], errors["reason"]))
    assert (results[results["sampler"] == "ula"]["status"] == "done").all()
    return reasons


def test_cell_timeout_ends_hung_cells_locally(write_suite, tmp_path, toy_registry):
    path = write_suite(TIMEOUTS)
    start = time.monotonic()
    run_suite(path, out=tmp_path / "out", registry=toy_registry)
    assert time.monotonic() - start < 60  # three hung cells, one second each, not an hour
    reasons = _timeout_reasons(tmp_path / "out")
    assert set(reasons) == {"sleep", "spin", "slow_steps"}
    assert all("exceeded cell_timeout = 1 s" in r for r in reasons.values()), reasons
    step = int(reasons["slow_steps"].rsplit("at step ", 1)[1].split()[0])
    assert step > 10  # it stepped for a second before it was ended


def test_cell_timeout_and_a_dying_worker_under_the_process_executor(write_suite, tmp_path):
    path = write_suite(TIMEOUTS.replace('"sleep", "spin", "slow_steps"', '"sleep", "spin", "slow_steps", "die"'))
    done = run_cli("run", path, "--out", tmp_path / "out", "--executor", "process", "--workers", "2",
                   env=plugins_env(**PLUGIN_ENV), timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]  # cells failed; the run finished
    reasons = _timeout_reasons(tmp_path / "out")
    assert all("exceeded cell_timeout = 1 s" in reasons[f] for f in ("sleep", "spin", "slow_steps")), reasons
    assert "worker process died twice while running it alone" in reasons["die"], reasons


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


SLOW = BASE_SUITE.replace("seeds = [0, 1]", "seeds = [0, 1, 2, 3, 4, 5]") + """
[[samplers]]
name = "toy_faulty"
params = { fault = "slow_steps" }
"""


def _as_from_a_terminal() -> None:
    """In the child before exec: SIGINT delivered and at its default, as for a command typed in a terminal.

    A long test session can leave the OS-level SIGINT disposition or mask of the test process changed by an
    extension module (Python's ``signal.getsignal`` still reports its own handler); the child would inherit
    it and never see the Ctrl-C this test sends (observed in full CI runs: the driver waited in its pool,
    no KeyboardInterrupt raised)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL])
def test_no_worker_outlives_an_interrupted_or_killed_run(write_suite, tmp_path, signum):
    path = write_suite(SLOW.replace("seeds = [0, 1, 2, 3, 4, 5]", "seeds = [0, 1, 2, 3, 4, 5]\ncell_timeout = 120"))
    out = tmp_path / "out"
    # PYTHONFAULTHANDLER: a run that does not end is made to print where each of its threads is (SIGABRT below)
    proc = subprocess.Popen(cli_command("run", path, "--out", out, "--executor", "process", "--workers", "2"),
                            env=plugins_env(**PLUGIN_ENV, PYTHONFAULTHANDLER="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=_as_from_a_terminal)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the fast cells are stored and the slow ones run
        if (out / "results.sqlite").exists():
            with sqlite3.connect(out / "results.sqlite") as conn:
                if conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0] >= 2:
                    break
        time.sleep(0.5)
    os.killpg(proc.pid, signum) if signum == signal.SIGINT else proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate(timeout=30)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its workers too
        except ProcessLookupError:
            pass
        pytest.fail(f"bench run did not end within 60 s of {signum.name}; where its threads were:\n{err[-8000:]}")
    if signum == signal.SIGINT:
        assert proc.returncode == 130, err[-2000:]
        assert "run the same command again to resume" in err
        assert "Traceback" not in err
    for _ in range(20):  # the workers notice within a second or two
        if not _group_alive(proc.pid):
            break
        time.sleep(0.5)
    assert not _group_alive(proc.pid), "a worker outlived the run"
    with sqlite3.connect(out / "results.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0] >= 2  # finished cells kept


def _dying_suite(tmp_path):
    marker = tmp_path / "died-once"
    return BASE_SUITE + f"""
[[samplers]]
name = "toy_faulty"
params = {{ marker = "{marker}" }}
grid = {{ fault = ["die_once", "die"] }}
"""


@pytest.mark.parametrize("executor", ["process", "ray"])
def test_a_worker_death_is_retried_once(write_suite, tmp_path, toy_plugins_in_workers, toy_registry, executor):
    """A cell whose worker dies once completes when run again; one that kills its worker every time is
    recorded failed; the other cells are unaffected."""
    if executor == "ray":
        pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")
    path = write_suite(_dying_suite(tmp_path).replace("seeds = [0, 1]", "seeds = [0]"))
    # a local Ray of this run (address None): its workers inherit this environment
    run_suite(path, out=tmp_path / "out", executor=executor, workers=2, registry=toy_registry)
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    status = {(s, p): st for s, p, st in zip(results["sampler"], results["sampler_params"], results["status"])}
    by_fault = {p: st for (s, p), st in status.items() if s == "toy_faulty"}
    assert [st for p, st in by_fault.items() if "die_once" in p] == ["done"]
    assert [st for p, st in by_fault.items() if '"die"' in p] == ["failed"]
    assert all(st == "done" for (s, _), st in status.items() if s == "ula")
    reason = results[(results["metric"] == "error")]["reason"].iloc[0]
    assert "\n" not in reason and ("died" in reason.lower() or "worker" in reason.lower()), reason


def test_a_failed_metric_is_retried_on_resume_and_values_are_kept(write_suite, tmp_path, toy_registry):
    path = write_suite(BASE_SUITE + '\n[[metrics]]\nname = "toy_broken"\n')
    first = run_suite(path, out=tmp_path / "out", registry=toy_registry)
    again = run_suite(path, out=tmp_path / "out", registry=toy_registry)
    assert first.n_run == 2 and again.n_run == 2  # the cells with a failed metric run again
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(results) == 2 * 4 and not results.duplicated(["cell", "metric"]).any()


def test_a_store_from_a_newer_bench_is_refused_with_the_versions(write_suite, tmp_path):
    path = write_suite()
    run_suite(path, out=tmp_path / "out")
    with sqlite3.connect(tmp_path / "out" / "results.sqlite") as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema'")
    with pytest.raises(BenchError, match="newer bench .*schema 99.* up to 2"):
        run_suite(path, out=tmp_path / "out")


def test_out_must_be_new_empty_or_a_results_folder(write_suite, tmp_path):
    from bench_core import cli

    path = write_suite()
    mine = tmp_path / "my_thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("precious")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    for out, fragment in [(mine, "holds no bench results"), (a_file, "is a file"),
                          (tmp_path / ("n" * 300), "cannot be used as the output folder"),
                          (str(tmp_path / "a\0b"), "cannot be used as the output folder")]:
        with pytest.raises(BenchError, match=fragment):
            run_suite(path, out=out)
    assert sorted(p.name for p in mine.iterdir()) == ["chapter1.tex"]  # nothing written there
    assert cli.main(["run", str(path), "--out", str(mine), "--force"]) == 0  # asked for explicitly
    assert (mine / "results.csv").exists() and (mine / "chapter1.tex").read_text() == "precious"
    assert run_suite(path, out=mine).n_skipped_finished == 2  # now a results folder: resumes


@pytest.mark.parametrize("name", ["..", ".", "a/b", "x\u202eevil", "bell\u0007", "n" * 101, " padded"])
def test_a_suite_name_must_be_a_safe_folder_name(write_suite, name):
    from bench_core.suite.schema import parse_suite

    path = write_suite(BASE_SUITE.replace('name = "t"', f"name = {json.dumps(name)}"))
    with pytest.raises(BenchError, match="name must be a folder name"):
        parse_suite(path)


def test_a_score_factory_raising_at_run_time_fails_its_cells(write_suite, tmp_path, toy_registry):
    import toy_plugins

    toy_plugins.OnceOnlyScore.built = 0
    path = write_suite(BASE_SUITE + '\n[[scores]]\nname = "exact"\n[[scores]]\nname = "toy_once_only"\n')
    summary = run_suite(path, out=tmp_path / "out", registry=toy_registry)
    assert summary.exit_code == 1
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    failed = results[results["status"] == "failed"]
    assert set(failed["score"]) == {"toy_once_only"} and len(failed) == 2  # both seeds; exact cells done
    assert failed["reason"].str.startswith("in score 'toy_once_only': RuntimeError: deliberate failure").all()


def test_cell_timeout_under_ray(write_suite, tmp_path, toy_plugins_in_workers, toy_registry):
    pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")
    path = write_suite(TIMEOUTS)
    # a local Ray of this run (address None): its workers inherit this environment
    run_suite(path, out=tmp_path / "out", executor="ray", workers=2, registry=toy_registry)
    reasons = _timeout_reasons(tmp_path / "out")
    assert set(reasons) == {"sleep", "spin", "slow_steps"}
    assert all("exceeded cell_timeout = 1 s" in r for r in reasons.values()), reasons
