"""A user's data file for the ``dataset`` target: ``.npy``, ``.npz``, ``.csv`` or ``.pt``, one row per point.

The file is read once into memory; its sha256 is taken from those same bytes and the array parsed from
them, so the digest (part of every cell key) always describes the data that was used. Every problem is
a ValueError naming the file and the fix.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

SUFFIXES = (".npy", ".npz", ".csv", ".pt")

#: fewer rows than this cannot be split into a training and a held-out part worth measuring
MIN_ROWS = 10


def _fail(where: object, problem: str, fix: str) -> ValueError:
    """``where`` is a Path (named as the data file) or a label such as "source 'digits'"."""
    label = f"dataset file '{where}'" if isinstance(where, Path) else str(where)
    return ValueError(f"{label}: {problem}; {fix}")


def load_file(path: Path, key: Optional[str] = None) -> tuple[np.ndarray, str]:
    """The rows of ``path`` (already resolved) as a float64 ``[N, d]`` array, and the file's sha256 hex.

    Parameters
    ----------
    path : Path
        A ``.npy``, ``.npz``, ``.csv`` (comma- or whitespace-separated numbers, an optional single header
        row) or ``.pt`` (one tensor saved with ``torch.save``) file.
    key : str, optional
        The array of a ``.npz`` archive; may be left out when the archive holds exactly one.

    Raises
    ------
    ValueError
        Naming the file and the fix: missing file, unknown suffix, unreadable content, not a 2-D numeric
        array, NaN or inf rows, fewer than ``MIN_ROWS`` rows.
    """
    if not path.is_file():
        raise _fail(path, "no such file", "check the path (a relative path is read relative to the suite file)")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise _fail(path, f"unknown file type '{path.suffix}'", f"save the rows as one of {', '.join(SUFFIXES)}")
    if key is not None and suffix != ".npz":
        raise _fail(path, "parameter 'key' applies only to .npz archives", "remove 'key'")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    reader = {".npy": _read_npy, ".npz": _read_npz, ".csv": _read_csv, ".pt": _read_pt}[suffix]
    array = reader(path, raw, key) if suffix == ".npz" else reader(path, raw)
    return check_rows(array, path), digest


def check_rows(array: np.ndarray, where: object) -> np.ndarray:
    """``array`` as float64 ``[N, d]`` with ``N >= MIN_ROWS`` and finite values, or a ValueError naming
    ``where`` (the file's Path, or a label for other data)."""
    if array.dtype.kind not in "biuf":
        raise _fail(where, f"holds {array.dtype} values, not numbers", "save a real-valued numeric array")
    if array.ndim != 2:
        fix = ("save an [N, d] array, one row per data point (x.reshape(-1, 1) for one-dimensional data)"
               if array.ndim < 2 else
               f"flatten each row, x.reshape(len(x), -1), and give image_shape = {list(array.shape[1:3])}"
               if array.ndim == 3 else "flatten each row: x.reshape(len(x), -1)")
        raise _fail(where, f"holds a {array.ndim}-D array of shape {tuple(array.shape)}, not [N, d] rows", fix)
    if array.shape[1] == 0:
        raise _fail(where, f"holds rows of 0 columns (shape {tuple(array.shape)})", "save at least one column")
    array = np.asarray(array, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise _fail(where, f"{bad.size} of its {len(array)} rows hold NaN or inf (the first is row {bad[0]}, "
                    "counting from 0)", "remove or impute those rows")
    if len(array) < MIN_ROWS:
        raise _fail(where, f"holds {len(array)} rows, fewer than {MIN_ROWS}",
                    f"give at least {MIN_ROWS} rows (each seed splits them into training and held-out rows)")
    return array


def _read_npy(path: Path, raw: bytes) -> np.ndarray:
    try:
        return np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise _fail(path, f"is not a readable .npy array ({_first_line(exc)})",
                    "save the rows with numpy.save(path, x) for a numeric array x") from None


def _read_npz(path: Path, raw: bytes, key: Optional[str]) -> np.ndarray:
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            keys = list(archive.files)
            if key is None and len(keys) != 1:
                raise _fail(path, f"holds {len(keys)} arrays ({', '.join(keys) or 'none'})",
                            "choose one with key = '<name>'" if keys else "save the rows with numpy.savez")
            if key is not None and key not in keys:
                raise _fail(path, f"holds no array '{key}' (it holds {', '.join(keys) or 'none'})",
                            "set key to one of those")
            return archive[keys[0] if key is None else key]
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise _fail(path, f"is not a readable .npz archive ({_first_line(exc)})",
                    "save the rows with numpy.savez(path, x=x)") from None
    except ValueError as exc:
        if str(exc).startswith("dataset file '"):
            raise
        raise _fail(path, f"is not a readable .npz archive ({_first_line(exc)})",
                    "save numeric arrays with numpy.savez(path, x=x)") from None


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _read_csv(path: Path, raw: bytes) -> np.ndarray:
    """Numbers separated by commas (whitespace when the first line has no comma); one header row is
    skipped when the first non-empty line is not all numbers."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _fail(path, "is not a UTF-8 text file", "save the rows as comma-separated numbers") from None
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise _fail(path, "is empty", "write one row of comma-separated numbers per data point")
    delimiter = "," if "," in lines[first] else None
    fields = lines[first].split(delimiter)
    skip = first + (0 if all(_is_number(f) for f in fields) else 1)  # a header row: skipped once
    try:
        rows = np.loadtxt(io.StringIO(text), delimiter=delimiter, skiprows=skip, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise _fail(path, f"holds a value that is not a number after the header ({_first_line(exc)})",
                    "keep at most one header row and write only numbers below it, the same count on each row") from None
    if rows.size == 0:
        raise _fail(path, "holds no rows of numbers", "write one row of comma-separated numbers per data point")
    return rows


def _read_pt(path: Path, raw: bytes) -> np.ndarray:
    import pickle
    import warnings

    import torch

    fix = "save one tensor of the rows with torch.save(x, path), x an [N, d] torch.Tensor"
    try:
        with warnings.catch_warnings():  # the unpickler warns about a pickle's protocol before refusing it
            warnings.simplefilter("ignore")
            obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # weights_only refuses any pickled object other than tensors and plain containers: never unpickle more
        raise _fail(path, "is not a tensor file that torch.load(weights_only=True) accepts (a pickle of another "
                    "object, or not a torch file)", fix) from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError) as exc:
        raise _fail(path, f"is not a readable torch file ({_first_line(exc)})", fix) from None
    if not isinstance(obj, torch.Tensor):
        raise _fail(path, f"holds a {type(obj).__name__}, not a torch.Tensor", fix)
    if obj.is_complex():
        raise _fail(path, f"holds a {obj.dtype} tensor, not real numbers", fix)
    return obj.detach().to(torch.float64).numpy()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
