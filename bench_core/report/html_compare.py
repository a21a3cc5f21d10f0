"""The "Compared with BASE" section of ``report.html`` (``bench report NEW --against BASE``).

What differs besides the numbers (code, settings, packages, commit), the count of each verdict per
metric, the fragility curve of both runs on one figure (BASE faded beneath NEW), the table of what
changed (every comparison whose verdict is not ``unchanged``) and the configurations of one run only.
The tables are those of ``bench compare`` (:mod:`.compare_text`).
"""
from __future__ import annotations

from bench_core.findings.compare_runs import NO_VERDICT, Comparison
from bench_core.findings.fragility import fragility_points
from bench_core.findings.labels import component_label
from bench_core.report import figures
from bench_core.report.compare_text import EXPLAINED, comparison_table, only_table, verdict_counts
from bench_core.report.html_parts import escape as _e, figure as _figure, table as _table


def _fragility(comparison: Comparison) -> str:
    """Both runs' fragility curves on one figure ("" when neither run has a sweep)."""
    new, base = fragility_points(comparison.new), fragility_points(comparison.base)
    if new.empty and base.empty:
        return ""
    shown, faded = (new, base) if not new.empty else (base, None)
    caption = ("Fragility curve of both runs: NEW in full colour, BASE faded beneath it (same line styles); "
               "certified TV lower bound against log10 ε₀², bars the 95% intervals over seeds.")
    return _figure(figures.fragility_curve(shown, faded), caption)


def _changed(comparison: Comparison) -> str:
    """The comparisons whose verdict is not ``unchanged`` (nor wall time's ``—``), as one table."""
    rows = comparison.rows
    moved = rows[~rows["verdict"].isin(["unchanged", NO_VERDICT])]
    if moved.empty:
        return (f'<p class="note">Nothing moved: all {len(rows)} comparisons are unchanged (wall time aside).</p>'
                if len(rows) else '<p class="note">No metric in common.</p>')
    table = comparison_table(moved).assign(target=[component_label(t, p) for t, p in
                                                   zip(moved["target"], moved["target_params"])])
    table = table[["target", *table.columns[:-1]]]
    return f"<h3>What changed ({len(moved)} of {len(rows)} comparisons)</h3>{_table(table)}"


def _only(comparison: Comparison) -> str:
    return "".join(f"<h3>Only in {role} ({len(only)} configurations)</h3>{_table(only_table(only))}"
                   for role, only in (("BASE", comparison.only_base), ("NEW", comparison.only_new)) if not only.empty)


def compare_section(comparison: Comparison) -> str:
    """The section's HTML (see the module docstring)."""
    base, new = comparison.base, comparison.new
    runs = "".join(f"<li>{role}: <code>{_e(run.folder)}</code> (suite {_e(run.info.get('suite', '?'))}, written "
                   f"{_e(run.info.get('written_at', '?'))})</li>" for role, run in (("BASE", base), ("NEW", new)))
    differences = "".join(f"<li>{_e(line)}</li>" for line in comparison.differences.lines())
    counts = _table(verdict_counts(comparison.rows)) if not comparison.rows.empty else ""
    return (f"<ul>{runs}</ul><p>What differs besides the numbers:</p><ul>{differences}</ul>"
            f'<p class="note">{_e(EXPLAINED.replace("`", ""))}</p>{counts}{_fragility(comparison)}'
            f"{_changed(comparison)}"
            f"{_only(comparison)}")
