"""The error hierarchy of bench.

Every error a user can cause derives from :class:`BenchError`; the CLI prints its
message as one line and exits with status 2. Messages name the file / plugin /
component at fault and say how to fix it.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class BenchError(Exception):
    """Base class: an error caused by input (suite, plugin, arguments), exit status 2."""


class SuiteError(BenchError):
    """A suite file is invalid: unknown key, wrong type, unknown component, bad params."""


class PluginError(BenchError):
    """A plugin is broken: duplicate name, misspelled hook, factory returning the wrong thing."""


class ComponentError(BenchError):
    """A component was asked for something it cannot do (unknown name, wrong kind)."""


class ResultsError(BenchError):
    """A results folder is missing or unreadable."""


class SkipCell(Exception):
    """Raised by a component when a cell does not apply (recorded as status ``skipped``).

    Example: a sampler that needs a closed-form CLD marginal on a target lacking it.
    """


class SkipMetric(Exception):
    """Raised by a metric that does not apply to a cell (e.g. ``gaussian_kl`` on a mixture)."""


class Diverged(Exception):
    """Raised when a sampler's particles become non-finite (recorded as status ``diverged``)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` if none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
