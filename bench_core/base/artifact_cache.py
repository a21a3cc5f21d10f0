"""On-disk cache of trained artifacts (networks), keyed by everything that changes them.

Layout, under the cache root (``$BENCH_CACHE``, else ``$XDG_CACHE_HOME/bench``, else
``~/.cache/bench``; ``bench run --cache DIR`` sets ``BENCH_CACHE`` for the run and its workers)::

    <root>/<kind>/<key>/spec.json         what the key was computed from (readable)
    <root>/<kind>/<key>/.lock             held while training (fcntl.flock)
    <root>/<kind>/<key>/<snapshot>/...    one finished snapshot (e.g. epochs_000150000/)
    <root>/<kind>/<key>/<snapshot>/sha256.json   the sha256 of each of its files, as written

A snapshot folder is written under a temporary name and renamed into place in one
``os.rename`` once every file in it is flushed to disk, so a crash or SIGKILL during
training leaves at most a ``.tmp-*`` folder that never loads as finished (it is removed
the next time the entry is locked). Several suites and runs share one cache: an entry is
found by its key, whoever made it.

A snapshot damaged later (a truncated or overwritten file: a full disk while copying the cache,
a bad sector) no longer matches its ``sha256.json``: it does not count as finished, so it is
trained again, and the first process to find it under the entry's lock discards it with a
warning on stderr naming its folder. So a damaged file heals on the next run, instead of failing
every cell that loads it with a reader's error, run after run.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import threading
import uuid
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterator, Optional

import torch

from bench_core.base.errors import disk_full, writing

CACHE_ENV = "BENCH_CACHE"
#: in each snapshot folder: ``{file name: sha256 hex}`` of every other file in it, recorded when written
CHECKSUMS = "sha256.json"
# entry folders whose lock this thread holds: lock() is reentrant, and a check made under the lock
# may discard a damaged snapshot at once
_held = threading.local()


def _held_paths() -> set[str]:
    if not hasattr(_held, "paths"):
        _held.paths = set()
    return _held.paths


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


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _digests(folder: Path) -> dict[str, str]:
    """``{path relative to folder: sha256}`` of every file under ``folder`` except the checksums."""
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).as_posix() != CHECKSUMS}


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
        """Whether snapshot ``name`` is finished and intact (temporary folders never count).

        A damaged snapshot (see :meth:`damage`) counts as missing, so it is trained again; when this
        thread holds the entry's lock it is discarded here, with a warning (see :meth:`discard`).
        """
        if not (self.path / name).is_dir():
            return False
        problem = self.damage(name)
        if problem is None:
            return True
        if str(self.path) in _held_paths():
            self.discard(name, problem)
        return False

    def damage(self, name: str) -> Optional[str]:
        """Why snapshot ``name`` differs from what was written (a missing file, or one whose sha256 is
        not the one recorded with it), or None when it matches.

        A snapshot written before checksums were recorded has no ``sha256.json`` and is not called
        damaged here: retraining every such network (hours each, at the paper's sizes) would cost more
        than checking it, so its loader verifies it by loading it instead and discards it when that fails
        (:meth:`checksummed` tells the two apart).
        """
        folder = self.path / name
        try:
            recorded = json.loads((folder / CHECKSUMS).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return f"its {CHECKSUMS} is unreadable"
        if not isinstance(recorded, dict) or not recorded:
            return f"its {CHECKSUMS} is unreadable"
        for relative, digest in sorted(recorded.items()):
            path = folder / relative
            if not path.is_file():
                return f"{relative} is missing"
            if file_sha256(path) != digest:
                return f"{relative} does not match the sha256 recorded when it was written"
        return None

    def checksummed(self, name: str) -> bool:
        """Whether snapshot ``name`` recorded the checksums of its files (all snapshots written now do)."""
        return (self.path / name / CHECKSUMS).is_file()

    def discard(self, name: str, problem: str) -> None:
        """Remove the damaged snapshot ``name`` under the entry's lock, saying so on stderr; it is then
        missing, and whoever needs it trains it again."""
        with self.lock():
            folder = self.path / name
            if not folder.is_dir():
                return  # another process discarded it first
            sys.stderr.write(f"bench: warning: the cache entry {folder} is damaged ({problem}): discarded, "
                             "training it again\n")
            sys.stderr.flush()
            doomed = self.path / f".tmp-damaged-{name}-{uuid.uuid4().hex}"
            os.rename(folder, doomed)  # out of sight at once: never listed, and removed at the next lock
            shutil.rmtree(doomed, ignore_errors=True)

    def snapshots(self) -> list[str]:
        """Names of the finished, intact snapshots, sorted (damaged ones are left out; see :meth:`has`)."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir()
                      if p.is_dir() and not p.name.startswith(".tmp-") and self.has(p.name))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the entry's exclusive lock (blocks while another process holds it; reentrant within a
        thread); on entry, remove temporary folders that a killed writer left."""
        held = _held_paths()
        if str(self.path) in held:
            yield
            return
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            held.add(str(self.path))
            try:
                for stale in self.path.glob(".tmp-*"):
                    shutil.rmtree(stale, ignore_errors=True)
                spec_file = self.path / "spec.json"
                if not spec_file.exists():
                    tmp = self.path / f".spec-{uuid.uuid4().hex}"
                    with writing(spec_file):
                        tmp.write_text(json.dumps(self.spec, indent=2, sort_keys=True, default=str))
                        os.replace(tmp, spec_file)
                yield
            finally:
                held.discard(str(self.path))
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def write_snapshot(self, name: str, write: Callable[[Path], None]) -> Path:
        """Create snapshot ``name`` atomically: ``write(folder)`` fills a temporary folder, whose
        checksums are recorded, and which is flushed and renamed to its final name. Call it while
        holding :meth:`lock`. A full disk raises :class:`~bench_core.base.errors.DiskFullError`."""
        tmp = self.path / f".tmp-{name}-{uuid.uuid4().hex}"
        try:
            with writing(self.path / name):
                tmp.mkdir(parents=True)
                try:
                    write(tmp)
                except (RuntimeError, ValueError) as exc:
                    # torch.save reports a full disk as a bare RuntimeError ("unexpected pos ..."): a
                    # write that failed with no room left on the disk is taken as the disk's fault
                    if _nearly_full(self.path):
                        raise disk_full(self.path / name) from exc
                    raise
                _record_checksums(tmp)
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


def _nearly_full(path: Path) -> bool:
    """Whether the disk holding ``path`` has less than 1 MiB left (for this user)."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < 2**20


def _record_checksums(folder: Path) -> None:
    """Write ``sha256.json`` for the files of ``folder``; one already there (a snapshot installed from
    another machine's cache) must match the files received."""
    digests = _digests(folder)
    shipped = folder / CHECKSUMS
    if shipped.is_file():
        if json.loads(shipped.read_text()) != digests:
            raise RuntimeError(f"the files received for {folder.name} do not match their checksums "
                               "(damaged in transit or in the sender's cache)")
        return
    shipped.write_text(json.dumps(digests, indent=2, sort_keys=True))


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
