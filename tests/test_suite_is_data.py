"""A suite file is data: checking or running one never calls what it names.

The ``network`` score's ``model`` is the one place where a suite's text reaches an import and a
call. Only an ``nn.Module`` subclass is built from a suite; anything else (``os:system``,
``subprocess:run``, ``builtins:eval``, a plain function) is refused before it is called, with exit
status 2 and one line, unless the user opts in to functions outside the suite file.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from helpers import plugins_env, run_cli

SUITE = """[suite]
name = "sent_to_you"
seeds = [0]
n_samples = 50
device = "cpu"

[[targets]]
name = "gaussian"
params = {{ dim = 3 }}

[[scores]]
name = "network"
params = {{ model = "{model}", kwargs = {kwargs}, output = "score", time = "t" }}

[[samplers]]
name = "ula"
params = {{ n_steps = 5 }}

[[metrics]]
name = "mean_error"
"""


def _cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """``bench ARGS`` without the opt-in in the environment, unless ``env_extra`` gives it."""
    env = plugins_env()
    env.pop("BENCH_ALLOW_MODEL_FACTORIES", None)
    return run_cli(*args, env={**env, **(env_extra or {})}, timeout=300)


def _toml_table(values: dict) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in values.items()) + " }"


@pytest.mark.parametrize("model,kwargs,kind", [
    ("os:system", "command", "builtin_function_or_method"),
    ("subprocess:run", "args", "function"),
    ("builtins:eval", "source", "builtin_function_or_method"),
    ("gaussian_eps_net:write_marker", "path", "function"),  # a plain function of the user's module
])
@pytest.mark.parametrize("command", ["check", "run"])
def test_a_suite_naming_a_callable_is_refused_without_calling_it(tmp_path, model, kwargs, kind, command):
    marker = tmp_path / "side_effect"
    payloads = {"command": f"touch {marker}", "args": ["touch", str(marker)],
                "source": f"open({str(marker)!r}, 'w').close()", "path": str(marker)}
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.format(model=model, kwargs=_toml_table({kwargs: payloads[kwargs]})))
    extra = ["--out", str(tmp_path / "out")] if command == "run" else []
    done = _cli(command, str(suite), *extra)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert f"'{model}' is a {kind}, not a torch.nn.Module subclass" in lines[0]
    assert str(suite) in lines[0] and "parameter 'model'" in lines[0]
    if kind == "function":  # the opt-in is offered for functions only, and only outside the suite
        assert "--allow-model-factories" in lines[0]
    assert not marker.exists(), "the suite's callable was called"


def test_the_user_may_opt_in_to_a_function_outside_the_suite(tmp_path):
    """With the flag (or the variable) a function returning an nn.Module builds the network;
    without it the same suite is refused; os:system stays refused either way (not a Python function)."""
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.format(model="gaussian_eps_net:make_gaussian_eps", kwargs=_toml_table({"dim": 3})))
    assert _cli("check", str(suite)).returncode == 2
    flagged = _cli("check", str(suite), "--allow-model-factories")
    assert flagged.returncode == 0 and "OK" in flagged.stdout, flagged.stderr
    env = _cli("check", str(suite), env_extra={"BENCH_ALLOW_MODEL_FACTORIES": "1"})
    assert env.returncode == 0, env.stderr
    marker = tmp_path / "side_effect"
    suite.write_text(SUITE.format(model="os:system", kwargs=_toml_table({"command": f"touch {marker}"})))
    assert _cli("check", str(suite), "--allow-model-factories").returncode == 2
    assert not marker.exists()


def test_the_attribute_path_runs_no_descriptor(tmp_path):
    """Looking up ``model`` reads attributes statically: a property on the named class never runs."""
    from bench_plugins.scores.learned.network import import_object

    obj = import_object("gaussian_eps_net:Trapdoor.opened")
    assert isinstance(obj, property)  # the descriptor itself, not its value: the getter did not run
