"""The fork server that worker processes are forked from: started once per run, with torch, bench and
the built-in plugins imported, so that a worker starts in milliseconds with them loaded.

No torch import here: ``bench run --executor process`` starts the server before the driver imports
torch, so that the server's imports (about 3 s of one core) overlap the driver's own instead of
delaying the first cell. Forking is safe because the server stays single-threaded: it runs torch on
one thread (``ONE_THREAD``), so it never starts the OpenMP pool that a forked child could not use.
"""
from __future__ import annotations

import os
import signal
import threading
from multiprocessing import forkserver

from bench_core.components.builtin_modules import BUILTIN_MODULES

#: what a worker process imports to run cells and train networks: the harness's task functions and the
#: built-in plugins (the fork server imports them once, before forking workers)
WORKER_MODULES = ("bench_core.run.tasks", "bench_core.run.training", *BUILTIN_MODULES)
#: set for the fork server only: torch (and any OpenMP library) on one thread, so it stays single-threaded
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

_lock = threading.Lock()
_users = 0  # holders between acquire_fork_server() and release_fork_server()
_ours = False  # the fork server running now was started here (so it is stopped here)


def acquire_fork_server() -> None:
    """Start the fork server with :data:`WORKER_MODULES` preloaded, unless one is running (then it is
    used as it is); it imports in the background while the caller goes on. Pair with
    :func:`release_fork_server`."""
    global _users, _ours
    with _lock:
        server = getattr(forkserver, "_forkserver", None)
        if not _users and getattr(server, "_forkserver_pid", None) is None:
            previous_preload = list(getattr(server, "_preload_modules", ["__main__"]))
            saved = {name: os.environ.get(name) for name in ONE_THREAD}
            forkserver.set_forkserver_preload(list(WORKER_MODULES))
            os.environ.update(ONE_THREAD)  # read by the fork server's runtimes as it starts; restored below
            try:
                forkserver.ensure_running()  # returns at once: the server imports while the caller goes on
                _ours = True
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
                forkserver.set_forkserver_preload(previous_preload)  # a server restarted by others loads theirs
        _users += 1


def release_fork_server() -> None:
    """Stop the fork server when its last holder releases it, if it was started here: the next run
    gets a new one, which imports the plugins' code as it is then (as spawned workers would)."""
    global _users, _ours
    with _lock:
        _users = max(_users - 1, 0)
        if _users or not _ours:
            return
        _ours = False
        server = getattr(forkserver, "_forkserver", None)
        pid, stop = getattr(server, "_forkserver_pid", None), getattr(server, "_stop", None)
        if pid is None or stop is None:
            return
        try:
            # its workers are gone; a process a plugin forked in a worker may still hold the server's
            # "alive" pipe, which would keep it (and stop(), which waits for it) running
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            stop()
        except ChildProcessError:  # already reaped
            pass
