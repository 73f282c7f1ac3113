"""app/common/allocator.py: glibc's malloc keeps freed window-sized blocks for reuse (no fresh pages each time)."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def page_faults_per_window(keep: bool, in_thread: bool = False) -> float:
    """Minor page faults per window-sized round (a float32 map of a 16 x 4 window at 294x518, its float16 copy and a
    1080p frame, allocated, filled and freed), in a fresh interpreter, after two warm-up rounds; ``in_thread``: the
    rounds run in a thread started after the allocator is set up (as the pipeline's feeder and writer)."""
    code = textwrap.dedent(
        f"""
        import resource, threading, numpy as np
        from app.common.allocator import keep_freed_memory
        assert keep_freed_memory() if {keep} else True
        faults = []
        def rounds():
            for i in range(8):
                if i == 2:
                    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                points = np.ones((16, 4, 294, 518, 3), np.float32)
                half, frame = points.astype(np.float16), np.ones((1080, 1920, 3), np.uint8)
                del points, half, frame
            faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 6)
        if {in_thread}:
            worker = threading.Thread(target=rounds)
            worker.start()
            worker.join()
        else:
            rounds()
        print(faults[0])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return float(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt: glibc only")
def test_freed_window_arrays_are_reused_without_page_faults() -> None:
    default, kept = page_faults_per_window(False), page_faults_per_window(True)
    assert default > 100  # fresh pages every round (thousands with 4 KiB pages, ~100 with transparent huge pages)
    assert kept < 0.1 * default


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt: glibc only")
def test_blocks_freed_in_a_worker_thread_are_reused_too() -> None:
    """A thread's own arena maps its heaps 64 MiB at a time and hands freed ones back: the window-sized blocks the
    feeder and writer threads allocate must come from the reused main heap as well."""
    default, kept = page_faults_per_window(False, in_thread=True), page_faults_per_window(True, in_thread=True)
    assert default > 100
    assert kept < 0.1 * default
