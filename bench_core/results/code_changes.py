"""Why two runs' numbers may differ: the code, the settings, the packages and the commit behind each.

A cell key hashes the code of the harness's numeric core and of the cell's components, and the settings
that change samples (docs/architecture.md, Cell keys). ``run.json`` records both parts (``code``: a
digest of the numeric core and one per component name; ``settings``), so two runs say which
components' code changed between them. A folder written before those were recorded says nothing of
its code: then the cell ids of the configurations both runs share still tell whether anything a key
hashes changed, without saying what.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import pandas as pd

from bench_core.results.run_results import ID_COLUMNS, RunResults

#: the kinds of ``run.json``'s ``code``, with the word a line uses for each
KINDS = {"targets": "target", "scores": "score", "initializers": "initializer", "samplers": "sampler",
         "metrics": "metric"}


@dataclass
class RunDifferences:
    """What differs between a BASE and a NEW run besides their numbers.

    ``code_changed`` and ``code_same`` name components as ``"sampler ula"`` (``"harness"`` for the numeric
    core) when both runs recorded their code; ``code_known`` is False when one of them did not.
    """

    code_known: bool
    code_changed: list[str] = field(default_factory=list)
    code_same: list[str] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)  # "n_samples: 2000 -> 1000"
    versions: list[str] = field(default_factory=list)  # "torch: 2.13.0 -> 2.14.0"
    commits: tuple[Optional[str], Optional[str]] = (None, None)
    shared_cells: int = 0  # (configuration, seed) pairs in both runs
    new_keys: int = 0  # of those, how many have another cell id in NEW

    def lines(self) -> list[str]:
        """One sentence per finding, in the order a reader asks: code, settings, keys, packages, commit."""
        out = []
        if self.code_known:
            changed = ", ".join(self.code_changed) if self.code_changed else "none"
            out.append(f"code changed: {changed} (unchanged: {', '.join(self.code_same) or 'none'})")
        else:
            out.append("code changed: unknown (a run.json from before code digests were recorded)")
        if self.settings:
            out.append("settings changed: " + "; ".join(self.settings))
        if self.shared_cells:
            why = ("the code or settings above" if self.code_changed or self.settings
                   else "the suite's metrics or code not recorded" if self.code_known else "code, settings or metrics")
            out.append(f"cell keys: {self.new_keys} of {self.shared_cells} shared cells have new keys"
                       + (f" ({why} changed)" if self.new_keys else " (same code and settings)"))
        if self.versions:
            out.append("package versions: " + "; ".join(self.versions))
        base, new = (c or "unknown" for c in self.commits)
        out.append(f"git commit: {base} -> {new}" if base != new else f"git commit: {base} (both)")
        return out


def _settings(info: dict[str, Any]) -> dict[str, Any]:
    """The settings a sample key hashes: run.json's ``settings``, or what an older run.json kept of them."""
    return info.get("settings") or {k: info[k] for k in ("n_samples", "dtype", "device", "checkpoints") if k in info}


def _changed(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``"key: old -> new"`` for every key both dicts hold with different values."""
    return [f"{key}: {base[key]} -> {new[key]}" for key in base if key in new and base[key] != new[key]]


def _code(base: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The components (and the harness) both runs recorded, split into (changed, same)."""
    changed, same = [], []
    if "harness" in base and "harness" in new:
        (changed if base["harness"] != new["harness"] else same).append("harness")
    for kind, word in KINDS.items():
        mine, theirs = base.get(kind) or {}, new.get(kind) or {}
        for name in [n for n in theirs if n in mine]:
            (changed if mine[name] != theirs[name] else same).append(f"{word} {name}")
    return changed, same


def run_differences(base: RunResults, new: RunResults) -> RunDifferences:
    """Compare the two runs' ``run.json`` (code, settings, provenance) and their cell ids."""
    b_info, n_info = base.info, new.info
    known = bool(b_info.get("code")) and bool(n_info.get("code"))
    changed, same = _code(b_info.get("code") or {}, n_info.get("code") or {}) if known else ([], [])
    b_prov, n_prov = b_info.get("provenance") or {}, n_info.get("provenance") or {}
    keys = [c for c in ID_COLUMNS if c != "cell"]
    cells = pd.merge(base.results[ID_COLUMNS].drop_duplicates(), new.results[ID_COLUMNS].drop_duplicates(), on=keys,
                     suffixes=("_base", "_new"))
    return RunDifferences(known, changed, same, _changed(_settings(b_info), _settings(n_info)),
                          _changed(b_prov.get("versions") or {}, n_prov.get("versions") or {}),
                          (b_prov.get("git_commit"), n_prov.get("git_commit")), len(cells),
                          int((cells["cell_base"] != cells["cell_new"]).sum()))
