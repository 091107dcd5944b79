"""What the worker's event loop does with each fetch response, with glibc's default malloc
settings and with the worker's (`monitor/service/allocator.py`): a 32 MB response joined from
the socket's 256 kB chunks, then four 8 MB partitions' records read out of it (aiokafka's
`io.BytesIO(...).read`), 15 times (about a million records of 480 bytes). Each setting runs in
a process of its own; best of 5, wall time.

Run:  .venv/bin/python bench/allocator.py
"""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import io, os, sys, time
if sys.argv[1] == "worker":
    from monitor.service.allocator import keep_large_buffers
    assert keep_large_buffers()
chunks = [os.urandom(256 * 1024) for _ in range(128)]
best = float("inf")
for _ in range(5):
    started = time.perf_counter()
    for _ in range(15):
        response = b"".join(chunks)
        reader = io.BytesIO(response)
        parts = [reader.read(8 << 20) for _ in range(4)]
        del parts, reader, response
    best = min(best, time.perf_counter() - started)
print(f"{best:.3f}")
"""


def main() -> int:
    seconds = {}
    for setting in ("default", "worker"):
        out = subprocess.run([sys.executable, "-c", CHILD, setting], check=True,
                             capture_output=True, text=True).stdout
        seconds[setting] = float(out.strip())
    print("15 responses of 32 MB joined and read out, best of 5:")
    for setting, s in seconds.items():
        print(f"  glibc {setting:<8} settings: {s:.3f} s")
    print(f"  ratio: {seconds['default'] / seconds['worker']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
