"""Labels of results rows, one function per meaning: a component (:func:`component_label`), a
configuration (:func:`config_label`), a (sampler, start) row (:func:`full_label`), and short labels
for figure axes (:func:`short_labels`, :func:`short_names`): a component's name plus only the params
that tell it apart. (Specs, before a run, are labelled by ``ComponentSpec.label`` and ``Cell.label``.)

A full label such as ``ddpm(discretization=exponential, n_steps=1000, T=5.0)`` is exact but too
long for a heatmap axis; cutting it would drop the one param that distinguishes two rows. Here a
set of components is shortened *consistently*: each keeps its name and the params whose values
differ among the components of the same name, and the start of a Langevin row keeps its name (and
its differing params). Nothing is cut mid-word; the report lists every full label next to its
short one.
"""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

from bench_core.plan.cells import AXES

Component = tuple[str, str]  # (name, canonical-JSON params)


def component_label(name: str, params: str) -> str:
    """``name(k=v, ...)`` from a component name and its canonical-JSON params (``name`` alone if none)."""
    items = json.loads(params) if params else {}
    inner = ", ".join(f"{k}={v}" for k, v in items.items())
    return f"{name}({inner})" if inner else name


def config_label(row: Mapping[str, Any], axes: Sequence[str] = AXES) -> str:
    """``target / score / initializer / sampler`` of a results row, each a :func:`component_label`
    (``axes`` picks fewer, e.g. without the target under a per-target heading)."""
    return " / ".join(component_label(row[axis], row[f"{axis}_params"]) for axis in axes)


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _distinguishing(components: Iterable[Component]) -> dict[str, list[str]]:
    """For each name, the params whose values differ among the components with that name."""
    values: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    seen: dict[str, set[str]] = defaultdict(set)
    for name, params in components:
        seen[name].add(params)
        items = json.loads(params) if params else {}
        for key, value in items.items():
            values[name][key].add(json.dumps(value, sort_keys=True))
    out = {}
    for name, keys in values.items():
        n = len(seen[name])
        # a param missing from some components also tells them apart
        out[name] = [k for k, vs in keys.items() if len(vs) > 1 or 0 < sum(k in (json.loads(p) if p else {})
                                                                             for p in seen[name]) < n]
    return out


def _short(component: Component, keep: dict[str, list[str]]) -> str:
    name, params = component
    items = json.loads(params) if params else {}
    # string values alone read well ("ddpm(exponential)"); numbers need their key ("ula(step_size=0.01)")
    shown = [_value(items[k]) if isinstance(items.get(k), str) else f"{k}={_value(items[k])}"
             for k in keep.get(name, []) if k in items]
    return f"{name}({', '.join(shown)})" if shown else name


def short_labels(rows: list[tuple[Component, Component]]) -> list[str]:
    """Short labels for ``[(sampler, start)]`` rows, in order; a start named ``prior`` is not shown.

    Two rows that differ get different labels: when shortening would merge them, their full labels
    are used instead.
    """
    samplers = _distinguishing(s for s, _ in rows)
    starts = _distinguishing(i for _, i in rows if i[0] != "prior")
    labels = [_short(s, samplers) + ("" if i[0] == "prior" else f" from {_short(i, starts)}") for s, i in rows]
    owners: dict[str, set] = defaultdict(set)
    for label, row in zip(labels, rows):
        owners[label].add(row)
    return [label if len(owners[label]) == 1 else full_label(row) for label, row in zip(labels, rows)]


def short_names(components: list[Component]) -> list[str]:
    """Short labels for single components (e.g. score families), in order."""
    keep = _distinguishing(components)
    return [_short(c, keep) for c in components]


def full_label(row: tuple[Component, Component]) -> str:
    """The full label of a ``(sampler, start)`` row, as the Markdown tables write it."""
    (name, params), (init, iparams) = row
    return component_label(name, params) + ("" if init == "prior" else f" from {component_label(init, iparams)}")
