"""Claims: executable expectations checked after a run (docs/architecture.md, Findings).

A claim selects cells, reduces ``metric`` over seeds with ``stat`` within each selected
configuration, and holds when ``value <op> threshold`` for every configuration.

A claim with ``versus`` compares each selected configuration with its counterpart: the same
configuration with the axes named in ``versus`` replaced (``{ initializer = "fresh" }``: the same
target, score and sampler started fresh). The metric is paired by seed (the same training set and
reference), turned into ``mine / theirs`` (``compare = "ratio"``) or ``mine - theirs``
(``"difference"``) per seed, and then reduced with ``stat``.
"""
from __future__ import annotations

import json
import math
import operator
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from bench_core.base.stats import reduce
from bench_core.findings.labels import config_label
from bench_core.plan.cells import AXES, Cell, select_matches
from bench_core.results.run_results import CONFIG_COLUMNS
from bench_core.suite.parsed import Claim, ComponentSpec, frozen_items, select_options, thaw

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}


@dataclass
class ClaimOutcome:
    """A checked claim: whether it holds and the value of each selected configuration."""

    claim: Claim
    holds: bool
    values: list[tuple[str, float]]

    def failing(self) -> list[tuple[str, float]]:
        """The configurations that break the claim (NaN: the metric was not produced)."""
        test = OPS[self.claim.op]
        return [(label, v) for label, v in self.values if math.isnan(v) or not test(v, self.claim.value)]

    def line(self) -> str:
        """One line: PASS/FAIL, the claim, and the worst (or failing) configurations."""
        c = self.claim
        sel = ", ".join(f"{k}={v}" for k, v in c.select) or "all cells"
        metric = c.metric
        if c.versus:
            other = ", ".join(f"{k}={v}" for k, v in c.versus)
            metric = f"{c.metric} {'/' if c.compare == 'ratio' else '-'} same with {other}"
        head = f"{'PASS' if self.holds else 'FAIL'} {c.stat}({metric}) {c.op} {c.value:g} [{sel}]"
        if not self.values:
            return f"{head} -> no cell produced it"
        if self.holds:
            lower = c.op in (">=", ">")
            worst = min(self.values, key=lambda lv: lv[1] if lower else -lv[1])
            shown = f"worst {worst[1]:.4g} of {len(self.values)} configuration(s) ({worst[0]})"
        else:
            bad = self.failing()
            shown = "; ".join(f"{label}: {v:.4g}" for label, v in bad[:3])
            shown += f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        return f"{head} -> {shown}" + (f"  [{c.why}]" if c.why else "")

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.claim.metric, "op": self.claim.op, "value": self.claim.value,
                "stat": self.claim.stat, "select": dict(self.claim.select), "why": self.claim.why,
                "versus": dict(self.claim.versus), "compare": self.claim.compare if self.claim.versus else None,
                "holds": self.holds, "values": self.values, "line": self.line()}


def _cell_of(row: Mapping[str, Any]) -> Cell:
    """The cell of a results row as a select sees it: its components (params frozen) and seed."""
    specs = [ComponentSpec(f"{axis}s", row[axis], frozen_items(json.loads(row[f"{axis}_params"] or "{}")))
             for axis in AXES]
    return Cell(*specs, seed=int(row["seed"]), key="", order=-1)


def rows_matching(table: pd.DataFrame, select: tuple[tuple[str, Any], ...]) -> pd.Series:
    """Rows whose cell matches a select, a claim's or ``--only``'s (:func:`select_matches`, once per distinct cell); a
    ``step`` (a checkpoint: ``table`` is the trajectory) matches the rows of that step."""
    columns = ["seed", *AXES, *(f"{axis}_params" for axis in AXES)]
    cells = table[columns].drop_duplicates()
    cells = cells.assign(_match=[select_matches(_cell_of(row), select) for row in cells.to_dict("records")])
    mask = pd.Series(table[columns].merge(cells, on=columns, how="left")["_match"].to_numpy(dtype=bool),
                     index=table.index)
    steps = dict(select).get("step")
    if steps is not None:
        mask &= table["step"].isin(select_options(steps))
    return mask


def _counterpart(table: pd.DataFrame, row: pd.Series, versus: tuple[tuple[str, Any], ...]) -> pd.DataFrame:
    """Rows of the configuration equal to ``row``'s except for the axes (and params) in ``versus``.

    ``{axis = name}`` replaces the component and ignores its params, unless ``<axis>.<param>`` keys
    pin some; ``{<axis>.<param> = v}`` alone keeps the component and its other params.
    """
    changes = dict(versus)
    mask = pd.Series(True, index=table.index)
    for axis in AXES:
        pinned = {k.split(".", 1)[1]: thaw(v) for k, v in changes.items() if k.startswith(axis + ".")}
        if axis not in changes and not pinned:
            mask &= (table[axis] == row[axis]) & (table[f"{axis}_params"] == row[f"{axis}_params"])
            continue
        mask &= table[axis] == changes.get(axis, row[axis])
        params = table[f"{axis}_params"].map(lambda p: json.loads(p) if p else {})
        if axis in changes:
            expected = pinned
            mask &= params.map(lambda p: all(k in p and p[k] == v for k, v in expected.items()))
        else:
            mine = json.loads(row[f"{axis}_params"]) if row[f"{axis}_params"] else {}
            expected = {**mine, **pinned}
            mask &= params.map(lambda p: p == expected)
    return table[mask]


def _paired(rows: pd.DataFrame, other: pd.DataFrame, metric: str, compare: str) -> list[float]:
    """Per seed ``mine / theirs`` or ``mine - theirs`` (NaN when the counterpart is missing or ambiguous)."""
    theirs = other[(other["metric"] == metric) & (other["status"] == "done")]
    if theirs.groupby(CONFIG_COLUMNS).ngroups != 1:
        return [math.nan]
    base = theirs.set_index("seed")["value"]
    out = []
    for seed, value in rows.set_index("seed")["value"].items():
        if seed not in base.index:
            out.append(math.nan)
        elif compare == "ratio":
            out.append(value / base[seed] if base[seed] != 0 else (math.nan if value == 0 else math.inf))
        else:
            out.append(value - base[seed])
    return out


def evaluate_claims(claims: list[Claim], results: pd.DataFrame,
                    trajectory: pd.DataFrame | None = None) -> list[ClaimOutcome]:
    """Check each claim against the tidy results (or, when it selects a ``step``, the trajectory)."""
    outcomes = []
    for claim in claims:
        table = results if "step" not in dict(claim.select) or trajectory is None else trajectory
        selected = table[rows_matching(table, claim.select)]
        values = []
        for _, group in selected.groupby(CONFIG_COLUMNS, sort=False):
            rows = group[(group["metric"] == claim.metric) & (group["status"] == "done")]
            if claim.versus:
                other = _counterpart(table, group.iloc[0], claim.versus)
                paired = _paired(rows, other, claim.metric, claim.compare)
                # a missing counterpart of any seed makes the claim unverifiable: NaN fails it
                value = math.nan if any(math.isnan(v) for v in paired) else reduce(paired, claim.stat)
                values.append((config_label(group.iloc[0]), value))
                continue
            values.append((config_label(group.iloc[0]), reduce(rows["value"].to_numpy(), claim.stat)))
        holds = bool(values) and all(not math.isnan(v) and OPS[claim.op](v, claim.value) for _, v in values)
        outcomes.append(ClaimOutcome(claim, holds, values))
    return outcomes
