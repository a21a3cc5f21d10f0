"""The markup every part of ``report.html`` shares: escaping, tables and figures.

Every text taken from the data goes through :func:`escape`; tables are pandas HTML in a scrolling
box; figures are base64 PNG with their caption as ``alt`` text, so the page stays one file.
"""
from __future__ import annotations

import html
from typing import Any

import pandas as pd


def escape(value: Any) -> str:
    """``str(value)`` with HTML's special characters escaped (quotes included: safe in attributes)."""
    return html.escape(str(value), quote=True)


def table(frame: pd.DataFrame) -> str:
    """A data table, escaped, in a box that scrolls sideways when the table is wider than the page."""
    body = frame.to_html(index=False, escape=True, na_rep="", border=0, classes="data")
    return f'<div class="scroll">{body}</div>'


def figure(png: str, caption: str, *, alt: str = "", headline: bool = False) -> str:
    """A base64 PNG with its caption (also its ``alt`` text unless ``alt`` is given); ``headline``: the
    first figure of the report (``id="headline-figure"``, drawn large)."""
    attrs = ' id="headline-figure" class="headline"' if headline else ""
    return (f'<figure{attrs}><img src="data:image/png;base64,{png}" alt="{escape(alt or caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")
