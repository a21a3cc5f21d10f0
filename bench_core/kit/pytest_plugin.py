"""bench's pytest plugin (entry point ``pytest11``): the conformance kit as fixtures for plugin authors.

Installed with bench, so a plugin distribution's tests can simply ask for them::

    def test_conforms(bench_plugin_check):
        import my_sampler
        bench_plugin_check(my_sampler)       # every component the module registers, checked

Fixtures
--------
bench_plugin_check
    ``check(module) -> [(kind, name, status)]``: :func:`bench_core.kit.check_plugin`, failing the
    test unless every component is ``ok`` (a component skipped by the kit, e.g. a factory with
    required params, is reported in the failure with its reason).
bench_gaussian
    :func:`bench_core.kit.gaussian_problem`: N(1, I_2), its exact score and a training set.
bench_tiny_suite
    :func:`bench_core.kit.tiny_suite`: the TOML text of a small suite that uses one component.
"""
from __future__ import annotations

from typing import Any, Callable

import pytest


@pytest.fixture
def bench_plugin_check() -> Callable[[Any], list[tuple[str, str, str]]]:
    """Run the conformance kit on every component a plugin module registers; all must be ``ok``."""
    from bench_core.kit import check_plugin

    def check(module: Any) -> list[tuple[str, str, str]]:
        statuses = check_plugin(module)
        not_ok = [f"{kind} {name}: {status}" for kind, name, status in statuses if status != "ok"]
        assert not not_ok, "not checked: " + "; ".join(not_ok)
        return statuses

    return check


@pytest.fixture
def bench_gaussian():
    """N(1, I_2) with its exact score and a 200-row training set (see ``gaussian_problem``)."""
    from bench_core.kit import gaussian_problem

    return gaussian_problem()


@pytest.fixture
def bench_tiny_suite() -> Callable[..., str]:
    """``tiny_suite(kind, name, params=None)``: a small suite (TOML text) that uses one component."""
    from bench_core.kit import tiny_suite

    return tiny_suite
