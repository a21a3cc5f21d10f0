"""What this machine has: its memory (1 TiB assumed where it cannot be read)."""
from __future__ import annotations

import os


def physical_memory() -> int:
    """This machine's memory in bytes (1 TiB where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40
