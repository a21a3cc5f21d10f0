"""The ``bench`` command line. Input errors: one line, exit status 2."""
from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
from functools import partial
from pathlib import Path
from typing import Optional, Sequence

# nothing here imports torch: `bench run --executor process` starts the workers' fork server first
from bench_core.base.errors import DISK_FULL_ERRNOS, BenchError, did_you_mean, disk_full
from bench_core.components.hookspecs import KINDS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="Benchmark score-based samplers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run a suite (resumes: finished cells are skipped)")
    run.add_argument("suite", help="suite file (.toml)")
    run.add_argument("--out", help="output folder (default reports/<suite name>)")
    run.add_argument("--executor", default="local", help="local | process | ray (default local)")
    run.add_argument("--workers", type=int, default=None, help="parallel workers (default: CPU count)")
    run.add_argument("--rerun", action="store_true", help="recompute finished cells")
    run.add_argument("--yes", action="store_true", help="run a grid above 100 000 cells")
    run.add_argument("--force", action="store_true", help="write into a non-empty folder that holds no bench results")
    run.add_argument("--device", help="cpu | cuda | auto (overrides the suite)")
    run.add_argument("--address", help="with --executor ray: HOST:PORT of a Ray head (ray start --head), or auto")
    run.add_argument("--only", help="run a subset, e.g. sampler=ula,score=exact|ball_trap,target.mean=3")
    run.add_argument("--cache", metavar="DIR", help="trained-network cache (default $BENCH_CACHE, else "
                                                  "~/.cache/bench); sets BENCH_CACHE for the run and its workers")
    check = sub.add_parser("check", help="validate a suite and print its cell count")
    check.add_argument("suite")
    check.add_argument("--yes", action="store_true", help="check a grid above 100 000 cells")
    for command in (run, check):
        command.add_argument("--allow-model-factories", action="store_true",
                             help="let a network score's model name a function returning an nn.Module (a "
                                  "suite alone may name only nn.Module classes); sets BENCH_ALLOW_MODEL_FACTORIES=1")
    lst = sub.add_parser("list", help="list registered components")
    lst.add_argument("kind", nargs="?", help=" | ".join(KINDS))
    lst.add_argument("-v", "--verbose", action="store_true", help="each component's params: type, default, meaning")
    describe = sub.add_parser("describe", help="one component: params, defaults, docstring")
    describe.add_argument("name")
    new = sub.add_parser("new", help="scaffold a plugin distribution: bench new sampler my_sampler")
    new.add_argument("kind", help="sampler | score | target | metric")
    new.add_argument("name", help="a lowercase identifier: the module and the component")
    new.add_argument("--dir", help="output folder (default ./NAME)")
    sub.add_parser("plugins", help="list loaded plugins, versions and components")
    show = sub.add_parser("show", help="print the leaderboard of a results folder")
    show.add_argument("dir")
    show.add_argument("--width", type=int, help="columns to fit (default: the terminal's, else 120)")
    report = sub.add_parser("report", help="write the HTML report of a results folder")
    report.add_argument("dir")
    report.add_argument("-o", "--output", metavar="FILE", help="output file (default DIR/report.html)")
    report.add_argument("--against", metavar="BASE", help="add a section comparing DIR with the results folder BASE")
    compare = sub.add_parser("compare", help="compare two results folders, paired by seed: better, worse, unchanged")
    compare.add_argument("base", help="the earlier results folder")
    compare.add_argument("new", help="the results folder to judge against it")
    compare.add_argument("--metric", metavar="METRIC[,..]", help="compare only these metrics (names or prefixes)")
    compare.add_argument("--only", help="compare a subset of cells, as bench run --only: sampler=ula,target.mean=3")
    compare.add_argument("--markdown", metavar="FILE", help="also write the comparison as Markdown to FILE")
    compare.add_argument("--fail-on", metavar="METRIC[,..]", help="exit 1 when one of these metrics got worse beyond "
                         "its interval (or NEW failed, diverged or lost it) in some configuration")
    compare.add_argument("--width", type=int, help="columns to fit (default: the terminal's, else 120)")
    return parser


def _registry():
    """The registry of every installed plugin (imports torch and the plugins)."""
    from bench_core.components.discovery import get_registry

    return get_registry()


def _allow_model_factories(args: argparse.Namespace) -> None:
    """The opt-in lives outside the suite file, in the environment, where every worker reads it."""
    if args.allow_model_factories:
        os.environ["BENCH_ALLOW_MODEL_FACTORIES"] = "1"


def _cmd_run(args: argparse.Namespace) -> int:
    from bench_core.pipeline import run_suite

    _allow_model_factories(args)

    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        raise BenchError(f"--workers must be >= 1, got {workers}")
    if args.cache is not None:
        if not args.cache.strip():
            raise BenchError("--cache needs a folder, e.g. --cache ~/bench-networks")
        os.environ["BENCH_CACHE"] = str(Path(args.cache).expanduser().resolve())  # inherited by workers
    summary = run_suite(args.suite, out=args.out, executor=args.executor, workers=workers, rerun=args.rerun,
                        device=args.device, only=args.only, address=args.address, allow_large=args.yes,
                        force=args.force)
    counts = ", ".join(f"{v} {k}" for k, v in sorted(summary.statuses.items()) if v)
    reused = f" ({summary.n_reused} reused kept samples: no sampler ran)" if summary.n_reused else ""
    print(f"{summary.n_cells} cells in suite; ran {summary.n_run}{reused}, {summary.n_skipped_finished} already "
          f"finished; {counts}")
    for outcome in summary.claims:
        print(outcome.line())
    print(f"results: {summary.out_dir}/results.csv, leaderboard: {summary.out_dir}/leaderboard.md")
    if summary.interrupted:
        print("interrupted: finished cells are saved; run the same command again to resume", file=sys.stderr)
    return summary.exit_code


def _cmd_check(args: argparse.Namespace) -> int:
    from bench_core.pipeline import plan_suite

    _allow_model_factories(args)
    plan = plan_suite(args.suite, allow_large=args.yes)
    s = plan.suite
    sizes = ", ".join(f"{len(s.components[k])} {k}" for k in s.components)
    print(f"{s.path}: OK: suite '{s.name}', {len(plan.cells)} cells ({sizes}, {len(s.seeds)} seeds; "
          f"diffusion samplers run once per initializer-free cell), {len(s.claims)} claims")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from bench_core.components.describe import describe

    registry = _registry()
    kinds = list(KINDS)
    if args.kind:
        if args.kind not in KINDS:
            raise BenchError(f"unknown kind '{args.kind}'{did_you_mean(args.kind, KINDS)}; kinds: {', '.join(KINDS)}")
        kinds = [args.kind]
    for kind in kinds:
        print(f"{kind}:")
        for c in registry.components(kind):
            print(f"  {c.name:<20} {c.description}  [{c.plugin}]")
            if args.verbose:
                for p in describe(c):
                    meaning = f": {p.meaning}" if p.meaning else ""
                    print(f"      {p.name}{f' ({p.type})' if p.type else ''} = {p.default}{meaning}")
    return 0


def _cmd_new(args: argparse.Namespace) -> int:
    from bench_core.kit.scaffold import scaffold

    folder = scaffold(args.kind, args.name, args.dir)
    print(f"wrote {folder}/: pyproject.toml, {args.name}.py, README.md, tests/test_{args.name}.py, "
          f"suites/example.toml\nnext: pip install -e \"{folder}[test]\" && (cd {folder} && python -m pytest && "
          "bench run suites/example.toml)")
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from bench_core.components.describe import summary

    registry = _registry()
    found = [c for kind in KINDS for c in registry.components(kind) if c.name == args.name]
    if not found:
        names = [c.name for kind in KINDS for c in registry.components(kind)]
        raise BenchError(f"no component named '{args.name}'{did_you_mean(args.name, names)}; see `bench list`")
    for component in found:
        print("\n".join(summary(component)))
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    registry = _registry()
    for info in registry.plugins.values():
        parts = ", ".join(f"{c.kind[:-1] if c.kind.endswith('s') else c.kind} {c.name}" for c in info.components)
        print(f"{info.name} {info.version} ({info.source}): {parts or 'no components'}")
    for name, reason in registry.broken.items():
        print(f"{name} (BROKEN, left out): {reason}")
    return 0


def _width(asked: Optional[int]) -> int:
    """The columns to fit tables to: ``--width``, else the terminal's, else 120."""
    width = asked or shutil.get_terminal_size((120, 24)).columns
    if width < 40:
        raise BenchError(f"--width {width} is too narrow for a table; use 40 or more")
    return width


def _cmd_show(args: argparse.Namespace) -> int:
    from bench_core.findings.contrast import contrast_markdown
    from bench_core.findings.fragility import headline_markdown
    from bench_core.findings.leaderboard import leaderboard_markdown
    from bench_core.results.run_results import load_results
    from bench_core.report.terminal_tables import fit_table, wrap_text

    run = load_results(Path(args.dir))
    width = _width(args.width)
    render = partial(fit_table, width=width)
    print(wrap_text(headline_markdown(run), width))
    print(wrap_text(leaderboard_markdown(run, render=render), width))
    contrast = contrast_markdown(run, render=partial(fit_table, width=width, keys=("sampler",)))
    if contrast:
        print(wrap_text(contrast, width))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from bench_core.report.html_report import write_report

    print(write_report(Path(args.dir), args.output, args.against))
    return 0


def _names(option: str, value: Optional[str]) -> list[str]:
    """A comma-separated option value as names; an option given with no name is an error."""
    if value is None:
        return []
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise BenchError(f"{option} needs metric names, e.g. {option} gaussian_kl,mean_error")
    return names


def _cmd_compare(args: argparse.Namespace) -> int:
    from bench_core.base.atomic_files import write_text_atomic
    from bench_core.findings.compare_runs import WALL, check_metric_names, compare_runs
    from bench_core.pipeline import only_select
    from bench_core.report.compare_text import compare_markdown, regression_lines
    from bench_core.report.terminal_tables import fit_table, wrap_text
    from bench_core.results.run_results import open_results

    width = _width(args.width)
    fail_on = _names("--fail-on", args.fail_on)
    if WALL in fail_on:
        raise BenchError("--fail-on wall_s: wall time gets no verdict (it depends on the machine and its load)")
    select = only_select(args.only) if args.only else None
    comparison = compare_runs(open_results(args.base), open_results(args.new),
                              metrics=_names("--metric", args.metric), select=select)
    check_metric_names(fail_on, list(dict.fromkeys(comparison.rows["metric"])), "--fail-on")
    print(wrap_text(compare_markdown(comparison, render=partial(fit_table, width=width,
                                                                keys=("score", "sampler", "metric"))),
                    width))
    if args.markdown:
        print(f"markdown: {write_text_atomic(Path(args.markdown), compare_markdown(comparison))}")
    failing = comparison.regressions(fail_on) if fail_on else comparison.rows.iloc[:0]
    for line in regression_lines(failing):
        print(line)
    if fail_on:
        verdict = f"{len(failing)} regression(s)" if len(failing) else "none got worse"
        print(f"--fail-on {','.join(fail_on)}: {verdict}")
    return 1 if len(failing) else 0


NEEDS_PLUGINS = ("run", "check", "list", "plugins", "describe")
COMMANDS = {"run": _cmd_run, "check": _cmd_check, "list": _cmd_list, "describe": _cmd_describe, "plugins": _cmd_plugins,
            "show": _cmd_show, "new": _cmd_new,
            "report": _cmd_report, "compare": _cmd_compare}


def _start_fork_server_early(args: argparse.Namespace) -> bool:
    """``bench run --executor process``: start the fork server its workers are forked from now, before
    this process imports torch and the plugins, so that the server's imports overlap them."""
    if args.command != "run" or args.executor != "process":
        return False
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    from bench_core.run.fork_server import acquire_fork_server

    acquire_fork_server()
    return True


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    early_server = _start_fork_server_early(args)
    try:
        if args.command in NEEDS_PLUGINS:
            for reason in _registry().broken.values():
                print(f"bench: warning: {reason} (its components are unavailable)", file=sys.stderr)
        return COMMANDS[args.command](args)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`bench show DIR | head`): stop quietly; point stdout at /dev/null so the
        # interpreter's final flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        if exc.errno not in DISK_FULL_ERRNOS:
            raise
        # a write that bench does not wrap itself (e.g. making a folder): the OS names the path
        print(f"bench: error: {disk_full(exc.filename or 'a file of this run', exc.strerror)}", file=sys.stderr)
        return 2
    finally:
        if early_server:
            from bench_core.run.fork_server import release_fork_server

            release_fork_server()


def entry() -> None:
    """The ``bench`` program: :func:`main`, then exit without a last garbage collection."""
    code = main()
    # every file is written and closed: spare the interpreter's final collection over torch's,
    # pandas' and matplotlib's objects (most of a second of exit time)
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
