"""Generated suite files, good and bad: `bench check` accepts them or refuses them in one line.

A seeded generator (no hypothesis: the cases are chosen to cover classes of input, and the same
run always checks the same files) mutates a small valid suite in every way the parser meets in
practice and some it should never meet: undecodable bytes, deep nesting, dates, scalars where a
table belongs, absurd sizes, grids of millions of cells, hostile names, NaN, wrong types and
missing or unknown keys. In-process, `plan_suite` may raise only the project's errors (BenchError)
and must answer each file within 5 s; a sample goes through the CLI, which must print no traceback.
"""
from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter

import pytest

from bench_core.errors import BenchError
from bench_core.session import plan_suite

BASE = """[suite]
name = "fuzz"
description = "generated"
seeds = [0, 1]
n_samples = 64
device = "cpu"

[data]
n_train = 20
duplicate = 2

[[targets]]
name = "gaussian"
params = { dim = 3, mean = 1.0 }

[[scores]]
name = "exact"

[[initializers]]
name = "standard_normal"

[[samplers]]
name = "ula"
params = { n_steps = 10 }
grid = { step_size = [0.01, 0.05] }

[[metrics]]
name = "mean_error"

[[claims]]
select = { sampler = "ula" }
metric = "mean_error"
op = "<="
value = 10.0
"""

SIZES = ["9223372036854775807", "4611686018427387904", "1000000000000", "-1", "0", "1e12", "2.5", "1e400"]
SIZE_KEYS = [("[suite]", "n_samples"), ("[suite]", "n_reference"), ("[data]", "n_train"), ("[data]", "duplicate")]
VALUES = ["1979-05-27", "1979-05-27T07:32:00Z", "07:32:00", "nan", "inf", "-inf", "true", "\"\"", "[]", "{}",
          "3", "\"x\"", "[1, \"a\"]", "{ a = 1 }", "1979-05-27T07:32:00"]
NAMES = ["\"..\"", "\".\"", "\"a/b\"", "\"\\u0000x\"", "\"" + "n" * 300 + "\"", "\"\\u202eevil\"", "\"\\u0007bell\"",
         "\"/etc\"", "\"con\"", "\"  \"", "\"\\t\""]


def _replace_line(text: str, startswith: str, new: str) -> str:
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(startswith):
            lines[i] = new
            return "\n".join(lines)
    return text + "\n" + new


def _set_key(text: str, table: str, key: str, value: str) -> str:
    if f"\n{key} = " in text or text.startswith(f"{key} = "):
        return _replace_line(text, f"{key} = ", f"{key} = {value}")
    return text.replace(table + "\n", f"{table}\n{key} = {value}\n", 1)


def generate(rng: random.Random):
    """Yield (class, bytes) cases."""
    base = BASE.encode()
    for _ in range(60):  # random byte flips and truncations
        data = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        yield "byte flips", bytes(data[: rng.randint(1, len(data))] if rng.random() < 0.2 else data)
    for _ in range(15):  # latin-1 text, binary files
        yield "not utf-8", BASE.replace("generated", "généré à " + rng.choice("éèàüß")).encode("latin-1")
        yield "binary", bytes([0x7F, 0x45, 0x4C, 0x46]) + rng.randbytes(rng.randint(0, 400))
    for table, key in SIZE_KEYS:  # absurd sizes
        for size in SIZES:
            yield "sizes", _set_key(BASE, table, key, size).encode()
    for size in SIZES:
        yield "sizes", BASE.replace("dim = 3", f"dim = {size}").encode()
        yield "sizes", BASE.replace("n_steps = 10", f"n_steps = {size}").encode()
    for depth in (10, 50, 200, 1000, 3000):  # deep nesting: arrays and inline tables
        yield "nesting", BASE.replace("mean = 1.0", "mean = " + "[" * depth + "1" + "]" * depth).encode()
        yield "nesting", BASE.replace("mean = 1.0", "mean = " + "{ a = " * depth + "1" + " }" * depth).encode()
        yield "nesting", (BASE + "\n[x" + ".y" * depth + "]\nz = 1\n").encode()
    for value in VALUES:  # dates, times, NaN and other values in every kind of place
        yield "values", BASE.replace("mean = 1.0", f"mean = {value}").encode()
        yield "values", _set_key(BASE, "[suite]", "seeds", value).encode()
        yield "values", _set_key(BASE, "[suite]", "name", value).encode()
        yield "values", BASE.replace("value = 10.0", f"value = {value}").encode()
        yield "values", BASE.replace('select = { sampler = "ula" }', f"select = {{ sampler = {value} }}").encode()
        yield "values", BASE.replace("step_size = [0.01, 0.05]", f"step_size = {value}").encode()
        yield "values", _set_key(BASE, "[suite]", "checkpoints", value).encode()
        yield "values", _set_key(BASE, "[suite]", "rank_by", value).encode()
    for scalar in ("3", "true", "\"x\"", "1979-05-27", "[1, 2]"):  # scalars where tables or lists belong
        yield "shapes", BASE.replace('select = { sampler = "ula" }', f"select = {scalar}").encode()
        yield "shapes", BASE.replace("grid = { step_size = [0.01, 0.05] }", f"grid = {scalar}").encode()
        yield "shapes", BASE.replace("params = { n_steps = 10 }", f"params = {scalar}").encode()
        yield "shapes", (f"targets = {scalar}\n" + BASE.replace("[[targets]]\nname = \"gaussian\"\n"
                                                               "params = { dim = 3, mean = 1.0 }\n", "")).encode()
        yield "shapes", (f"claims = {scalar}\n" + BASE.split("[[claims]]")[0]).encode()
        yield "shapes", (f"exclude = {scalar}\n" + BASE).encode()
        yield "shapes", BASE.replace("[data]\nn_train = 20\nduplicate = 2\n", f"data = {scalar}\n").encode()
        yield "shapes", BASE.replace("[[metrics]]\nname = \"mean_error\"\n", f"metrics = {scalar}\n").encode()
    for name in NAMES:  # hostile suite names
        yield "names", _set_key(BASE, "[suite]", "name", name).encode()
    for n_seeds in (10 ** 3, 10 ** 5):  # many seeds, many grid points, a product of millions
        yield "huge grids", _set_key(BASE, "[suite]", "seeds", f"[{', '.join(map(str, range(n_seeds)))}]").encode()
    for n_points in (10 ** 3, 2 * 10 ** 5):
        values = ", ".join(f"{0.001 + i * 1e-7:.7f}" for i in range(n_points))
        yield "huge grids", BASE.replace("step_size = [0.01, 0.05]", f"step_size = [{values}]").encode()
    for side in (100, 1000, 3000):
        axis = ", ".join(str(i + 1) for i in range(side))
        yield "huge grids", BASE.replace("params = { n_steps = 10 }\ngrid = { step_size = [0.01, 0.05] }",
                                         f"grid = {{ n_steps = [{axis}], step_size = [{axis}] }}").encode()
    lines = BASE.split("\n")
    for _ in range(70):  # lines dropped, duplicated or swapped
        mutated = list(lines)
        for _ in range(rng.randint(1, 3)):
            i, j = rng.randrange(len(mutated)), rng.randrange(len(mutated))
            op = rng.choice(["drop", "dup", "swap"])
            if op == "drop":
                del mutated[i]
            elif op == "dup":
                mutated.insert(j, mutated[i])
            else:
                mutated[i], mutated[j] = mutated[j], mutated[i]
        yield "line edits", "\n".join(mutated).encode()
    keys = ["n_samples", "seeds", "name", "dim", "mean", "n_steps", "step_size", "metric", "op", "value",
            "n_train", "duplicate", "device", "dtype"]
    for _ in range(80):  # a value replaced by one of another type
        key, value = rng.choice(keys), rng.choice(VALUES + SIZES + ["\"cuda\"", "\"banana\"", "\"float16\""])
        yield "types", "\n".join(
            (f"{ln.split('=')[0]}= {value}" if ln.startswith(f"{key} =") else
             ln.replace(f"{key} = ", f"{key} = {value}, _old = ") if f" {key} = " in ln and "{" in ln else ln)
            for ln in lines).encode()
    for metric in ("nope", "mean_error.nope", "gaussian_kl", ""):  # names of metrics that do not exist
        yield "metric names", _set_key(BASE, "[suite]", "rank_by", f"\"{metric}\"").encode()
        yield "metric names", _set_key(BASE, "[suite]", "leaderboard_metrics", f"[\"{metric}\"]").encode()
        yield "metric names", BASE.replace('metric = "mean_error"', f'metric = "{metric}"').encode()
    for device in ("\"banana\"", "\"cuda:99\"", "\"cpu\"", "\"auto\""):
        yield "devices", _set_key(BASE, "[suite]", "device", device).encode()
    for x in ("[1.0]", "[1.0, 2.0, 3.0, 4.0]", "[1.0, 2.0, 3.0]", "\"a\""):  # component params checked without running
        yield "params", BASE.replace("[[initializers]]\nname = \"standard_normal\"",
                                     f"[[initializers]]\nname = \"point\"\nparams = {{ x = {x} }}").encode()
    for distinct in (5, 20, 21, 10 ** 9):
        yield "params", BASE.replace("[[initializers]]\nname = \"standard_normal\"",
                                     f"[[initializers]]\nname = \"train\"\nparams = {{ distinct = {distinct} }}").encode()


def _cases():
    return list(generate(random.Random(20261201)))


def test_generated_suites_are_accepted_or_refused_cleanly(tmp_path, capsys):
    cases = _cases()
    assert len(cases) >= 500
    outcome: Counter = Counter()
    slowest = 0.0
    for i, (kind, data) in enumerate(cases):
        path = tmp_path / f"case{i}.toml"
        path.write_bytes(data)
        start = time.perf_counter()
        try:
            plan_suite(path)
            outcome[(kind, "accepted")] += 1
        except BenchError as exc:
            assert "\n" not in str(exc), f"case {i} ({kind}): multi-line message {str(exc)[:300]!r}"
            outcome[(kind, "refused")] += 1
        except BaseException as exc:  # noqa: BLE001 - the failure this test exists to catch
            pytest.fail(f"case {i} ({kind}) raised {type(exc).__name__}: {str(exc)[:300]}\n{data[:400]!r}")
        elapsed = time.perf_counter() - start
        slowest = max(slowest, elapsed)
        assert elapsed < 5.0, f"case {i} ({kind}) took {elapsed:.1f} s"
    with capsys.disabled():
        kinds = sorted({k for k, _ in outcome})
        print(f"\n{len(cases)} generated suites: {sum(v for (k, r), v in outcome.items() if r == 'accepted')} "
              f"accepted, {sum(v for (k, r), v in outcome.items() if r == 'refused')} refused, slowest "
              f"{slowest:.2f} s; " + ", ".join(f"{k} {outcome[(k, 'accepted')]}/{outcome[(k, 'refused')]}"
                                              for k in kinds))


def test_a_sample_through_the_cli_prints_no_traceback(tmp_path):
    cases = _cases()
    sample = random.Random(7).sample(range(len(cases)), 12)
    for i in sample:
        kind, data = cases[i]
        path = tmp_path / f"case{i}.toml"
        path.write_bytes(data)
        done = subprocess.run([sys.executable, "-m", "bench_core.cli", "check", str(path)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode in (0, 2), (kind, done.stderr[-500:])
        assert "Traceback" not in done.stderr, (kind, done.stderr[-1500:])
        if done.returncode == 2:
            assert len(done.stderr.strip().splitlines()) == 1 or "warning" in done.stderr, done.stderr
