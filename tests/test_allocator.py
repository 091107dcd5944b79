"""The worker's allocator settings: a fetch-sized buffer comes from the heap, not from a mapping
of its own (which the kernel faults in and zeroes page by page at every use)."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import ctypes, sys

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
if sys.argv[1] == "worker":
    from monitor.service.allocator import keep_large_buffers
    assert keep_large_buffers()
mapped = mallinfo2().hblkhd
buffer = bytes(40 << 20)  # a fetch response of 40 MB
print(mallinfo2().hblkhd - mapped)
"""


def mapped_for_a_response(setting: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, setting], check=True,
                         capture_output=True, text=True).stdout
    return int(out.strip())


def test_a_fetch_sized_buffer_comes_from_the_heap_with_the_worker_settings() -> None:
    assert mapped_for_a_response("default") >= 40 << 20  # glibc's default: a mapping of its own
    assert mapped_for_a_response("worker") == 0
