"""On-disk cache of trained artifacts (networks), keyed by everything that changes them.

Layout, under the cache root (``$BENCH_CACHE``, else ``$XDG_CACHE_HOME/bench``, else
``~/.cache/bench``; ``bench run --cache DIR`` sets ``BENCH_CACHE`` for the run and its workers)::

    <root>/<kind>/<key>/spec.json         what the key was computed from (readable)
    <root>/<kind>/<key>/.lock             held while training (fcntl.flock)
    <root>/<kind>/<key>/<snapshot>/...    one finished snapshot (e.g. epochs_000150000/)

A snapshot folder is written under a temporary name and renamed into place in one
``os.rename`` once every file in it is flushed to disk, so a crash or SIGKILL during
training leaves at most a ``.tmp-*`` folder that never loads as finished (it is removed
the next time the entry is locked). Several suites and runs share one cache: an entry is
found by its key, whoever made it.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import tarfile
import uuid
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterator, Optional

import torch

CACHE_ENV = "BENCH_CACHE"


def cache_root() -> Path:
    """The cache root: ``$BENCH_CACHE``, else ``$XDG_CACHE_HOME/bench``, else ``~/.cache/bench``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "bench"


def source_digest(*modules: ModuleType) -> str:
    """sha256 of the source files of ``modules`` (for keys: the code that determines an artifact)."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def tensor_digest(x: torch.Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes (for keys: the data an artifact was made from)."""
    x = x.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{x.dtype}{tuple(x.shape)}".encode())
    digest.update(x.numpy().tobytes())
    return digest.hexdigest()


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CacheEntry:
    """One cached artifact: its folder, its finished snapshots, an exclusive lock for writers.

    Parameters
    ----------
    kind : str
        A folder per kind of artifact (e.g. ``"ddpm_mlp"``).
    key : str
        Hex digest of everything that determines the artifact.
    spec : dict
        The same information in readable form, written to ``spec.json``.
    root : Path, optional
        Default :func:`cache_root` (read when the entry is made, so workers see the run's setting).
    """

    def __init__(self, kind: str, key: str, spec: dict, root: Optional[Path] = None) -> None:
        self.kind, self.key, self.spec = kind, key, spec
        self.path = (root or cache_root()) / kind / key

    def snapshot_path(self, name: str) -> Path:
        return self.path / name

    def has(self, name: str) -> bool:
        """Whether snapshot ``name`` is finished (temporary folders never count)."""
        return (self.path / name).is_dir()

    def snapshots(self) -> list[str]:
        """Names of the finished snapshots, sorted."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if p.is_dir() and not p.name.startswith(".tmp-"))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the entry's exclusive lock (blocks while another process holds it); on entry, remove
        temporary folders that a killed writer left."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                for stale in self.path.glob(".tmp-*"):
                    shutil.rmtree(stale, ignore_errors=True)
                spec_file = self.path / "spec.json"
                if not spec_file.exists():
                    tmp = self.path / f".spec-{uuid.uuid4().hex}"
                    tmp.write_text(json.dumps(self.spec, indent=2, sort_keys=True, default=str))
                    os.replace(tmp, spec_file)
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def write_snapshot(self, name: str, write: Callable[[Path], None]) -> Path:
        """Create snapshot ``name`` atomically: ``write(folder)`` fills a temporary folder, which is
        flushed and renamed to its final name. Call it while holding :meth:`lock`."""
        tmp = self.path / f".tmp-{name}-{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        try:
            write(tmp)
            _fsync_tree(tmp)
            final = self.path / name
            if final.exists():  # written by an earlier holder of the lock: keep the first
                shutil.rmtree(tmp)
            else:
                os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.path / name


def pack_entry(relative: str) -> bytes:
    """The finished snapshots and ``spec.json`` of the entry at ``<cache root>/<relative>`` as one
    uncompressed tar (weights do not compress), for workers that do not share this disk."""
    root = cache_root() / relative
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(root.iterdir()):
            if path.name == "spec.json" or (path.is_dir() and not path.name.startswith(".tmp-")):
                tar.add(path, arcname=path.name)
    return buffer.getvalue()


def install_entry(relative: str, blob: bytes) -> Path:
    """Put the snapshots of a :func:`pack_entry` blob into this machine's cache (those it lacks), each
    atomically under the entry's lock; returns the entry's folder."""
    kind, key = relative.split("/", 1)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
        members = tar.getmembers()
        spec_member = next((m for m in members if m.name == "spec.json"), None)
        spec = json.load(tar.extractfile(spec_member)) if spec_member is not None else {}
        entry = CacheEntry(kind, key, spec)
        names = sorted({m.name.split("/", 1)[0] for m in members if m.name != "spec.json"})
        if all(entry.has(name) for name in names):
            return entry.path
        with entry.lock():
            for name in names:
                if entry.has(name):
                    continue
                inside = [m for m in members if m.name.startswith(name + "/") and m.isfile()]

                def write(folder: Path, inside: list = inside, name: str = name) -> None:
                    for member in inside:
                        target = folder / member.name[len(name) + 1:]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(tar.extractfile(member).read())

                entry.write_snapshot(name, write)
    return entry.path
