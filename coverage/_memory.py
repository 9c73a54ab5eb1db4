"""glibc malloc settings for array-heavy commands: keep freed memory in the process for reuse.

`zhongdu plan` allocates and frees the same few-MB NumPy temporaries thousands of times (chunks
of the site matrix). With glibc's defaults each large one is a fresh `mmap`, or the heap is
trimmed and grown again, so every chunk pays page faults: at resolution 11, 170,000 of them and
about 0.3 s of system time (docs/performance.md). Raising the thresholds keeps those pages.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc <malloc.h>


def keep_freed_memory(mmap_mb: int = 64, trim_mb: int = 256, pad_mb: int = 64) -> bool:
    """Serve allocations below `mmap_mb` from the heap, keep up to `trim_mb` free at its top and
    grow it `pad_mb` at a time. True when glibc took the settings (False elsewhere: no change)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    settings = ((_M_MMAP_THRESHOLD, mmap_mb), (_M_TRIM_THRESHOLD, trim_mb), (_M_TOP_PAD, pad_mb))
    return all(mallopt(param, mb << 20) == 1 for param, mb in settings)
