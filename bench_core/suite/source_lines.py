"""Line numbers for TOML tables and keys, so suite errors can say where (tomllib gives none)."""
from __future__ import annotations

import re


class Locator:
    """Finds the line of ``[table]``, the i-th ``[[array]]`` and a key inside either."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self._headers: list[tuple[int, str, bool]] = []  # (line index, name, is_array)
        for i, line in enumerate(self.lines):
            m = re.match(r"\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$", line)
            if m:
                self._headers.append((i, m.group(2).strip(), m.group(1) == "[["))

    def table(self, name: str, index: int | None = None) -> int | None:
        """1-based line of ``[name]`` (index None) or of the index-th ``[[name]]``."""
        seen = 0
        for i, header, is_array in self._headers:
            if header != name:
                continue
            if index is None and not is_array:
                return i + 1
            if index is not None and is_array:
                if seen == index:
                    return i + 1
                seen += 1
        return None

    def key(self, table: str, key: str, index: int | None = None) -> int | None:
        """1-based line where ``key =`` first appears inside a table (else the table's line)."""
        start = self.table(table, index)
        if start is None:
            return self._top_level_key(key)
        following = [i for i, _, _ in self._headers if i + 1 > start]
        end = following[0] if following else len(self.lines)
        pattern = re.compile(rf"(^|[{{,\s]){re.escape(key)}\s*=")
        for i in range(start, end):
            if pattern.search(self.lines[i].split("#", 1)[0]):
                return i + 1
        return start

    def _top_level_key(self, key: str) -> int | None:
        end = self._headers[0][0] if self._headers else len(self.lines)
        for i in range(end):
            if re.match(rf"\s*{re.escape(key)}\s*=", self.lines[i]):
                return i + 1
        return None
