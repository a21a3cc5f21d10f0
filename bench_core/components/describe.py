"""Components describe themselves: parameters, types, defaults and meanings, read from the factory.

The signature gives names, defaults and annotations; the numpy-style ``Parameters`` section of the
factory's docstring (the class docstring for a class) gives each parameter's meaning. ``bench list
KIND -v`` and ``bench describe NAME`` print what :func:`describe` returns.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

from bench_core.components.registry import SINGULAR, Component

#: leading positional arguments the harness passes, per kind (not suite params)
HARNESS_ARGS = {"scores": 2}
_PARAM_LINE = re.compile(r"^(\w+(?:\s*,\s*\w+)*)\s*:\s*(.*)$")  # "name : type" or "a, b : type"


@dataclass
class ParamInfo:
    name: str
    type: str
    default: str
    meaning: str


def _docstring(factory: Any) -> str:
    return inspect.getdoc(factory) or ""


def parameter_meanings(doc: str) -> dict[str, tuple[str, str]]:
    """``{name: (type text, first sentence of its description)}`` from a numpy ``Parameters`` section."""
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Parameters") + 2
    except StopIteration:
        return {}
    out: dict[str, tuple[str, str]] = {}
    names: list[str] = []
    for i in range(start, len(lines)):
        line, following = lines[i], (lines[i + 1] if i + 1 < len(lines) else "")
        if line.strip() and not line.startswith(" ") and following.strip().startswith("---"):
            break  # the next section (Returns, Keys, ...)
        match = _PARAM_LINE.match(line)
        if match and not line.startswith(" "):
            names = [n.strip() for n in match.group(1).split(",")]
            for name in names:
                out[name] = (match.group(2).strip(), "")
        elif names and line.strip() and not out[names[0]][1]:
            for name in names:
                out[name] = (out[name][0], line.strip().split(". ")[0].rstrip("."))
    return out


def describe(component: Component) -> list[ParamInfo]:
    """The suite params of a component, in signature order."""
    factory = component.factory
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return []
    parameters = [p for p in parameters[HARNESS_ARGS.get(component.kind, 0):]
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    meanings = parameter_meanings(_docstring(factory))
    out = []
    for p in parameters:
        doc_type, meaning = meanings.get(p.name, ("", ""))
        annotation = "" if p.annotation is inspect.Parameter.empty else str(p.annotation)
        default = "(required)" if p.default is inspect.Parameter.empty else repr(p.default)
        # the docstring's type (without its ", default ...") is the more telling one, e.g. {"eps", "score"}
        doc_type = re.split(r",\s*(?:default|optional)", doc_type)[0].strip()
        out.append(ParamInfo(p.name, doc_type or annotation.replace("typing.", ""), default, meaning))
    return out


def summary(component: Component) -> list[str]:
    """What ``bench describe`` prints for one component."""
    lines = [f"{component.name} ({SINGULAR[component.kind]}, plugin {component.plugin}): {component.description}"]
    if component.kind == "samplers":
        family = getattr(component.factory, "family", "?")
        lines.append(f"  family: {family}; receives the score estimate only (score(x, t)), the starting particles "
                     f"x0, a torch.Generator and a callback(step, t, x); no target, no log-density")
    if component.kind == "targets":
        forms = [m for m in ("log_prob", "score") if callable(getattr(component.factory, m, None))]
        lines.append(f"  closed forms: {', '.join(forms)}; exact samples" if forms else
                     "  only samples (no log_prob, no score): scores and metrics that need a closed form are "
                     "refused on it; use learned scores (empirical, ddpm_mlp, network) and sample metrics")
    instead = getattr(component.factory, "closed_form_only", None)
    if instead:
        lines.append(f"  needs its target's closed form; on a target that is only samples use {instead}")
    first = _docstring(component.factory).split("\n\n", 1)[0].replace("\n", " ")
    if first:
        lines.append(f"  {first}")
    params = describe(component)
    lines.append("  params:" if params else "  params: none")
    for p in params:
        kind = f" ({p.type})" if p.type else ""
        meaning = f": {p.meaning}" if p.meaning else ""
        lines.append(f"    {p.name}{kind} = {p.default}{meaning}")
    return lines
