"""A full disk or a damaged file ends ``bench run`` with one line (what happened, the path, what to
do) and exit status 2, never a traceback, and never fails forever: finished cells are kept, a
damaged store is left as it is, and a damaged cached network is discarded and trained again."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench_core import cli, pipeline
from bench_core.base.errors import DiskFullError
from bench_core.pipeline import run_suite
from bench_core.store.sqlite_store import Store
from conftest import BASE_SUITE

SIX = BASE_SUITE.replace("seeds = [0, 1]", "seeds = [0, 1, 2, 3, 4, 5]")  # six cells, well under a second
FREE_SPACE = "free space on that disk and run the same command again: finished cells are kept"


def bench_run(capsys, *args: str) -> tuple[int, str, str]:
    """``bench run ARGS`` in this process: (exit status, stdout, stderr)."""
    code = cli.main(["run", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(err: str) -> str:
    """The run's one error line, checked to be the last thing it printed, with no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("bench: error:")]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0]), err
    return lines[0]


def same_results(a: Path, b: Path) -> None:
    """Two runs' exports agree in everything but the wall times."""
    for name in ("results.csv",):
        left, right = (pd.read_csv(d / name).drop(columns=["wall_s"]) for d in (a, b))
        assert not right.duplicated().any()
        pd.testing.assert_frame_equal(left, right)


# ---------------------------------------------------------------- a full disk

class _FullAfter(sqlite3.Connection):
    """A connection whose cell writes find the disk full once ``room`` of them succeeded."""

    room = 0

    def executemany(self, *args, **kwargs):
        if _FullAfter.room == 0:
            raise sqlite3.OperationalError("database or disk is full")
        _FullAfter.room -= 1
        return super().executemany(*args, **kwargs)


def test_a_full_disk_at_a_commit_is_one_line_and_the_rerun_keeps_the_finished_cells(tmp_path, capsys, monkeypatch):
    suite = tmp_path / "six.toml"
    suite.write_text(SIX)
    code, _, _ = bench_run(capsys, suite, "--out", tmp_path / "clean")
    assert code == 0
    out = tmp_path / "out"
    connect = sqlite3.connect
    with monkeypatch.context() as patch:
        _FullAfter.room = 3
        patch.setattr(sqlite3, "connect", lambda *a, **k: connect(*a, factory=_FullAfter, **k))
        code, _, err = bench_run(capsys, suite, "--out", out)
    assert code == 2
    line = error_line(err)
    assert str(out / "results.sqlite") in line and "database or disk is full" in line and FREE_SPACE in line
    with sqlite3.connect(out / "results.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 3
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    code, stdout, _ = bench_run(capsys, suite, "--out", out)  # space freed: the same command
    assert code == 0 and "ran 3, 3 already finished" in stdout
    same_results(tmp_path / "clean", out)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 4 MiB tmpfs (needs root and a ``mount`` that may mount one; skipped otherwise)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(disk: Path) -> Path:
    """Write zeros to a file on ``disk`` until it is full; returns the file (delete it to free space)."""
    filler = disk / f"filler-{uuid.uuid4().hex}"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


@pytest.mark.parametrize("stored, fails_on", [(3, "results.sqlite"), (6, "results.csv")])
def test_a_real_full_disk_is_one_line_and_freeing_space_resumes(tmp_path, tiny_disk, capsys, monkeypatch,
                                                                  stored, fails_on):
    """The disk fills after ``stored`` cells are committed: SQLite's next commit (or, with every cell
    stored, the export) fails; after the filler is deleted, the same command finishes the rest."""
    suite = tmp_path / "six.toml"
    suite.write_text(SIX)
    code, _, _ = bench_run(capsys, suite, "--out", tmp_path / "clean")
    assert code == 0
    out = tiny_disk / "out"
    fillers = []
    write = Store.write

    def then_fill(self, cell, result):
        write(self, cell, result)
        if len(self.finished_keys()) == stored and not fillers:
            fillers.append(fill(tiny_disk))

    with monkeypatch.context() as patch:
        patch.setattr(Store, "write", then_fill)
        code, _, err = bench_run(capsys, suite, "--out", out)
    assert code == 2 and fillers
    line = error_line(err)
    assert f"cannot write {out / fails_on} " in line and FREE_SPACE in line, line
    fillers[0].unlink()
    code, stdout, _ = bench_run(capsys, suite, "--out", out)
    assert code == 0 and f"ran {6 - stored}, {stored} already finished" in stdout, stdout
    same_results(tmp_path / "clean", out)
    with sqlite3.connect(out / "results.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _fsync_failing(fragment: str):
    """``os.fsync`` that finds the disk full for files whose path contains ``fragment``."""
    fsync = os.fsync

    def fake(fd: int) -> None:
        if fragment in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    return fake


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/self/fd")
@pytest.mark.parametrize("fragment, named", [("results.csv", "results.csv"), ("run.json", "run.json"),
                                             ("leaderboard.md", "leaderboard.md"), ("report.html", "report.html"),
                                             (".npz", "samples/")])
def test_every_export_on_a_full_disk_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch, fragment, named):
    suite = tmp_path / "six.toml"
    suite.write_text(SIX.replace('device = "cpu"', 'device = "cpu"\nkeep_samples = true'))
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", _fsync_failing(fragment))
        code, _, err = bench_run(capsys, suite, "--out", out)
    assert code == 2
    line = error_line(err)
    assert f"cannot write {out}/{named}" in line and "No space left on device" in line and FREE_SPACE in line, line
    assert not list(out.rglob(".*.tmp-*"))  # no temporary file left behind
    code, stdout, _ = bench_run(capsys, suite, "--out", out)
    assert code == 0 and "6 done" in stdout


def test_errors_log_on_a_full_disk_is_one_line(write_suite, tmp_path, monkeypatch, toy_registry):
    path = write_suite(BASE_SUITE + '\n[[samplers]]\nname = "toy_faulty"\nparams = { fault = "shape" }\n')

    def full_open(file, *args, **kwargs):
        if Path(file).name == "errors.log":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return open(file, *args, **kwargs)

    monkeypatch.setattr(pipeline, "open", full_open, raising=False)
    with pytest.raises(DiskFullError) as raised:
        run_suite(path, out=tmp_path / "out", registry=toy_registry)
    message = str(raised.value)
    assert "\n" not in message and str(tmp_path / "out" / "errors.log") in message and FREE_SPACE in message


# ---------------------------------------------------------------- a damaged store

def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * (path.stat().st_size // 256))


def _empty(path: Path) -> None:
    os.truncate(path, 0)


@pytest.mark.parametrize("damage, what", [(_truncate, "malformed"), (_garbage, "not a SQLite database"),
                                          (_empty, "empty")])
def test_a_damaged_store_is_one_line_and_left_as_it_is(write_suite, tmp_path, capsys, damage, what):
    path = write_suite()
    out = tmp_path / "out"
    run_suite(path, out=out)
    store = out / "results.sqlite"
    damage(store)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
    code, _, err = bench_run(capsys, path, "--out", out)
    assert code == 2
    line = error_line(err)
    assert f"results.sqlite in {out} is damaged ({what}" in line, line
    assert "move it away (or use a new --out) and rerun" in line and "CSV exports" in line
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert after == before  # the store and the exports of its last good run, byte for byte
    # moved away as the line says, the same command starts a new store
    store.rename(tmp_path / "damaged.sqlite")
    code, stdout, _ = bench_run(capsys, path, "--out", out)
    assert code == 0 and "ran 2, 0 already finished" in stdout
    # an empty file with no export beside it is a first run that died at once, not damage: a new store
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "results.sqlite").touch()
    with Store(tmp_path / "new" / "results.sqlite") as fresh:
        assert fresh.finished_keys() == set()


# ---------------------------------------------------------------- a damaged cached network

TINY_NET = """
[suite]
name = "tiny_net"
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
name = "ula"
params = { n_steps = 10 }
grid = { step_size = [0.01, 0.02] }

[[metrics]]
name = "mean_error"
"""


@pytest.fixture
def tiny_net(tmp_path, capsys, monkeypatch):
    """(suite, out, snapshot folder) of a finished run of :data:`TINY_NET` with its own cache."""
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    suite = tmp_path / "net.toml"
    suite.write_text(TINY_NET)
    code, stdout, _ = bench_run(capsys, suite, "--out", tmp_path / "out")
    assert code == 0 and "2 done" in stdout
    (snapshot,) = (tmp_path / "cache").glob("ddpm_mlp/*/epochs_000000005")
    return suite, tmp_path / "out", snapshot


def _weights(snapshot: Path) -> dict:
    return torch.load(snapshot / "weights.pt", weights_only=True)


def test_a_damaged_cached_network_is_discarded_and_trained_again(tiny_net, capsys):
    suite, out, snapshot = tiny_net
    good = _weights(snapshot)
    os.truncate(snapshot / "weights.pt", 1000)
    code, stdout, err = bench_run(capsys, suite, "--out", out, "--rerun")
    assert code == 0 and "2 done" in stdout, err
    warning = [line for line in err.splitlines() if line.startswith("bench: warning:")]
    assert len(warning) == 1 and str(snapshot) in warning[0], err
    assert "weights.pt does not match the sha256 recorded" in warning[0] and "training it again" in warning[0]
    assert all(torch.equal(good[k], v) for k, v in _weights(snapshot).items())  # trained again, bit for bit
    assert json.loads((snapshot / "sha256.json").read_text()).keys() >= {"weights.pt", "state.pt"}
    code, stdout, err = bench_run(capsys, suite, "--out", out, "--rerun")  # healed: no warning, no training
    assert code == 0 and "2 done" in stdout and "warning" not in err and "cached, loaded from" in err


def test_a_damaged_network_cached_before_checksums_is_checked_by_loading_it(tiny_net, capsys):
    suite, out, snapshot = tiny_net
    (snapshot / "sha256.json").unlink(missing_ok=True)  # as an earlier version wrote it
    code, stdout, err = bench_run(capsys, suite, "--out", out, "--rerun")
    assert code == 0 and "2 done" in stdout and "warning" not in err  # it loads: trusted, not retrained
    os.truncate(snapshot / "weights.pt", 1000)
    code, stdout, err = bench_run(capsys, suite, "--out", out, "--rerun")
    assert code == 0 and "2 done" in stdout, err
    warning = [line for line in err.splitlines() if line.startswith("bench: warning:")]
    assert len(warning) == 1 and str(snapshot) in warning[0] and "does not load" in warning[0], err
    assert (snapshot / "sha256.json").is_file()  # trained again, with checksums


def test_a_network_that_matches_its_checksum_but_does_not_load_fails_in_the_score(tiny_net, capsys):
    suite, out, snapshot = tiny_net
    (snapshot / "weights.pt").write_bytes(b"not a state_dict" * 10)
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in snapshot.iterdir() if p.name != "sha256.json"}
    (snapshot / "sha256.json").write_text(json.dumps(sums))  # the file is as recorded: no damage to repair
    code, stdout, _ = bench_run(capsys, suite, "--out", out, "--rerun")
    assert code == 1 and "2 failed" in stdout
    results = pd.read_csv(out / "results.csv")
    reasons = results[results["metric"] == "error"]["reason"]
    assert len(reasons) == 2 and reasons.str.startswith("in score 'ddpm_mlp': ").all(), list(reasons)
    assert reasons.str.contains(str(snapshot / "weights.pt"), regex=False).all()


def test_a_full_disk_while_training_is_one_line(tmp_path, capsys, monkeypatch):
    """torch.save reports a full disk as a bare RuntimeError; with no room left it is named as such."""
    from bench_core.base import artifact_cache

    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    suite = tmp_path / "net.toml"
    suite.write_text(TINY_NET)

    def full_save(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(torch, "save", full_save)
    monkeypatch.setattr(artifact_cache, "_nearly_full", lambda path: True)
    code, _, err = bench_run(capsys, suite, "--out", tmp_path / "out")
    assert code == 2
    line = error_line(err)
    assert f"cannot write {tmp_path / 'cache'}/ddpm_mlp/" in line and FREE_SPACE in line, line
    assert not list((tmp_path / "cache").glob("ddpm_mlp/*/epochs_*"))  # nothing that looks finished

