"""Tables and text that fit a terminal: ``bench show`` on an 80- or 120-column screen.

A leaderboard has a few columns that say which configuration a row is (rank, score, initializer,
sampler, seeds) and many value columns; a contrast table has one long entry per score family. A
table wider than the terminal is split into parts, each repeating the identifying columns and
taking as many value columns as fit; an entry wider than the terminal on its own is wrapped
inside its cell. Nothing is cut off: every entry of the Markdown files appears in full.
"""
from __future__ import annotations

import textwrap
from typing import Sequence

import pandas as pd
import tabulate as tabulate_module
from tabulate import tabulate

KEY_COLUMNS = ("rank", "score", "initializer", "sampler", "seeds")
_GAP = 2  # spaces between columns in tabulate's "simple" format


def _width(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def _render(table: pd.DataFrame, caps: Sequence[int]) -> str:
    frame = table.astype(str)
    previous, tabulate_module.MIN_PADDING = tabulate_module.MIN_PADDING, 0  # columns exactly as wide as their text
    try:
        return tabulate(frame, headers=list(frame.columns), tablefmt="simple", showindex=False,
                        maxcolwidths=list(caps), maxheadercolwidths=list(caps), disable_numparse=True)
    finally:
        tabulate_module.MIN_PADDING = previous


def _natural(table: pd.DataFrame, column: str) -> int:
    """The width a column needs unwrapped (its longest entry or header)."""
    return max(len(str(v)) for v in [*table[column], column])


def _share(natural: list[int], budget: int) -> list[int]:
    """Caps for columns sharing ``budget`` characters (water-filling): narrow columns keep their
    width, the widest are cut to one common level, never below 8."""
    level = max(natural, default=0)
    while level > 8 and sum(min(n, level) for n in natural) > budget:
        level -= 1
    return [min(n, level) for n in natural]


def fit_table(table: pd.DataFrame, width: int, keys: Sequence[str] = KEY_COLUMNS) -> str:
    """``table`` as aligned text no wider than ``width``: split into parts that repeat the key columns
    (those of ``keys`` it has; else its first column), with cells wrapped when one alone is too wide."""
    if table.empty:
        return "(no rows)"
    key_cols = [c for c in table.columns if c in keys] or [table.columns[0]]
    values = [c for c in table.columns if c not in key_cols]
    # the identifying columns get at most 60% of the width; the value columns share the rest
    key_caps = _share([_natural(table, c) for c in key_cols], int(width * 0.6) - _GAP * len(key_cols))
    room = width - sum(c + _GAP for c in key_caps)
    parts: list[list[str]] = []
    current: list[str] = []
    used = 0
    for column in values:
        need = min(_natural(table, column), room - _GAP) + _GAP
        if current and used + need > room:
            parts.append(current)
            current, used = [], 0
        current.append(column)
        used += need
    parts.append(current)
    rendered = []
    for index, part in enumerate(parts):
        value_caps = _share([_natural(table, c) for c in part], room - _GAP * len(part))
        frame = table[key_cols + part]
        text = _render(frame, key_caps + value_caps)
        if _width(text) > width:  # tabulate could not wrap as asked (long words): equal shares
            text = _render(frame, [max(8, width // len(frame.columns) - _GAP)] * len(frame.columns))
        title = f"(part {index + 1} of {len(parts)})\n" if len(parts) > 1 else ""
        rendered.append(title + text)
    return "\n\n".join(rendered)


def wrap_text(text: str, width: int) -> str:
    """Paragraphs and list items re-wrapped to ``width`` (headings and blank lines kept)."""
    out = []
    for line in text.splitlines():
        if len(line) <= width or line.startswith("#"):
            out.append(line)
            continue
        indent = "  " if line.startswith("- ") else ""
        out.append(textwrap.fill(line, width=width, subsequent_indent=indent, break_long_words=True,
                                 break_on_hyphens=False))
    return "\n".join(out)
