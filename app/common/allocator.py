"""Keep freed frame-sized memory in the process instead of handing it back to the system (glibc only).

glibc serves an allocation above its ``mmap`` threshold (128 KiB, raised automatically to the largest block freed so
far, but never beyond 32 MiB) with fresh pages from the kernel and returns them when it is freed; the next such array
then page-faults every one of its pages again, and free memory at the heap's top is handed back beyond twice that
threshold. The pipeline allocates and frees arrays of 0.5-6 MB per camera image (decoded frames, resize steps) and of
up to ~120 MB per window (float32 maps, their float16 encodings, compressed windows), so on the development VM, where
a first-touch page fault is slow, a third of its CPU time was the kernel's (``benchmarks/README.md``, pipeline ceiling:
system time 7.0 -> 3.1 s, pipeline CPU 29.5 -> 26.6 ms per camera image). With the thresholds below, such blocks
come from and go back to the heap and are reused; memory the process no longer needs stays mapped up to
:data:`TRIM_THRESHOLD` (a few windows' worth), so the resident size stays at the pipeline's working set plus that.

Those thresholds govern the main heap only. A thread's first allocation gives it its own *arena*, whose heaps are
mapped 64 MiB at a time: a block larger than that is mapped afresh whatever the threshold, and a freed heap is
handed back at once. The decoder, feeder and writer threads allocate most of the frame- and window-sized blocks, so
the process is limited to :data:`ARENAS` arena (every thread allocates from the main heap; its lock costs little
next to the copies it guards, and the GIL serialises most of those callers anyway). Measured with the pipeline
ceiling's quick benchmark (``benchmarks/README.md``): ~1.2 M page faults and a third of the pipeline's CPU time in
the kernel's page zeroing without it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -2, -3, -8  # glibc <malloc.h>
MMAP_THRESHOLD = 256 << 20  # blocks below 256 MiB come from the heap (16 x 4 float32 point maps at 294x518: 117 MB)
TRIM_THRESHOLD = 512 << 20  # free memory at the heap's top is returned beyond 512 MiB
TOP_PAD = 64 << 20  # the heap grows 64 MiB at a time
ARENAS = 1  # every thread allocates from the main heap (module docstring)

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's malloc thresholds and arena limit above (once per process; they hold for the rest of it; call it
    before starting threads: a thread that has allocated keeps its arena). Returns whether they are in effect: False
    where the C library is not glibc (macOS, Windows, musl), where this does nothing."""
    global _applied
    if _applied is None:
        _applied = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):
                return False
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            settings = (
                (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                (M_TOP_PAD, TOP_PAD),
                (M_ARENA_MAX, ARENAS),
            )
            _applied = all(mallopt(option, value) == 1 for option, value in settings)
    return _applied
