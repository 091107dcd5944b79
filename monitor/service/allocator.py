"""glibc's malloc, told to keep the worker's large buffers for reuse.

The worker's event loop takes fetch responses of up to 32 MB, and each partition's records are
copied out of them (aiokafka reads them from the response). By default glibc serves an
allocation above 128 kB with a fresh `mmap` (the threshold grows with what is freed, to 32 MB at
most) and gives memory freed at the top of its heap back to the system above 128 kB: each of
those buffers was memory the kernel faulted in and zeroed page by page, several times what the
copy itself costs (`bench/allocator.py`). With a 64 MB threshold and up to 128 MB kept, the
buffers come from the heap again.

`keep_large_buffers()` says whether it could (it does nothing where the C library is not glibc).
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_ABOVE = 64 << 20  # allocations at least this large get an mmap of their own
RELEASE_ABOVE = 128 << 20  # free memory at the top of the heap above this goes back


def keep_large_buffers() -> bool:
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return False  # not glibc (musl has a mallopt too, with other numbers)
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_ABOVE)) and bool(
        mallopt(M_TRIM_THRESHOLD, RELEASE_ABOVE))
    if not done:
        log.info("the C library refused the allocator settings: large buffers are mapped anew")
    return done
