"""Keep freed memory for reuse: no page faults on the per-step temporaries of a cell.

Every step of a sampler allocates its drift (the score's ``[n, d]`` result) and frees the previous
one. With glibc's defaults a block of that size is ``mmap``-ed on allocation and unmapped on free,
so each step touches fresh pages: at n = 1e5, d = 50 that is ~3000 page faults and 6 ms a step,
more than the score's arithmetic. :func:`keep_freed_memory` tells glibc to serve large blocks from
the heap and not to give freed memory back (``M_MMAP_MAX = 0``, ``M_TRIM_THRESHOLD = 2 GiB``): the
next step reuses the same pages. Peak memory is unchanged (the same blocks are live at the peak);
memory freed after the peak stays with the process until it exits, which is what a worker that
runs cell after cell wants. Elsewhere (macOS, musl) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_KEEP_BYTES = 2 << 30
_done = False


def keep_freed_memory() -> bool:
    """Apply the setting once per process; True when glibc accepted it."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    _done = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))
    return _done
