"""The process executor's workers: forked from a fork server that has loaded bench, started once per
run and kept from one ``map`` to the next, on one torch thread, with the driver's environment as it is
when the pool starts, and gone after ``close()``."""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time

import pytest
import torch

from bench_plugins.executors.process import ProcessExecutor, WorkerDied


def _worker_state(task: tuple[int, str]) -> tuple[int, int, str | None, bool]:
    """(pid, torch threads, the environment variable named by the task, whether a plugin was loaded
    before the task arrived: by the fork server, since nothing in this module imports it)."""
    loaded = "bench_plugins.samplers.langevin" in sys.modules
    return os.getpid(), torch.get_num_threads(), os.environ.get(task[1]), loaded


def _two_thread_op(_: object) -> float:
    """A torch op on two threads: it hangs in a child forked after its parent started OpenMP threads."""
    torch.set_num_threads(2)
    x = torch.ones(2000, 2000)
    return float((x @ x).sum())


def _children_alive() -> list[int]:
    return [p.pid for p in multiprocessing.active_children()]


def test_workers_persist_across_maps_until_close(monkeypatch):
    executor = ProcessExecutor(workers=2)
    executor.start()
    try:
        monkeypatch.setenv("BENCH_TEST_SET_LATER", "yes")  # after the fork server started
        tasks = [(i, "BENCH_TEST_SET_LATER") for i in range(4)]
        states = [state for _ in range(2) for _, state in executor.map(_worker_state, tasks)]
        assert len(states) == 8
        assert {s[1] for s in states} == {1}  # one torch thread per worker
        assert {s[2] for s in states} == {"yes"}  # the driver's environment when the pool started
        assert all(s[3] for s in states)  # the plugins were loaded before the first task (fork server)
        pids = {s[0] for s in states}
        assert len(pids) <= 2  # the same two workers served both maps
    finally:
        executor.close()
    assert not _children_alive()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_one_off_map_leaves_no_process():
    results = list(ProcessExecutor(workers=2).map(_worker_state, [(i, "HOME") for i in range(3)]))
    assert len(results) == 3 and not _children_alive()


def test_forked_workers_can_use_torch_threads():
    """The fork server never starts an OpenMP pool, so a worker may run torch on several threads (a
    child forked after its parent started one hangs in its first parallel op: the alarm ends the test)."""
    def hung(signum: int, frame: object) -> None:
        raise TimeoutError("a two-thread torch op hung in a forked worker")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    try:
        with ProcessExecutor(workers=1) as executor:
            results = list(executor.map(_two_thread_op, [None]))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert results == [(None, pytest.approx(2000.0 ** 3))]
    assert not _children_alive()


def test_a_worker_killed_between_maps_costs_no_cell():
    with ProcessExecutor(workers=2) as executor:
        tasks = [(i, "HOME") for i in range(4)]
        pids = {state[0] for _, state in executor.map(_worker_state, tasks)}
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        results = list(executor.map(_worker_state, tasks))
    assert len(results) == 4 and not any(isinstance(r, (WorkerDied, BaseException)) for _, r in results)
    assert not {state[0] for _, state in results} & pids
