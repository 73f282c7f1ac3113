"""app/common/allocator.py: glibc's malloc keeps freed window-sized blocks for reuse (no fresh pages each time)."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def page_faults_per_window(keep: bool) -> float:
    """Minor page faults per window-sized round (a float32 map of a 16 x 4 window at 294x518, its float16 copy and a
    1080p frame, allocated, filled and freed), in a fresh interpreter, after two warm-up rounds."""
    code = textwrap.dedent(
        f"""
        import resource, numpy as np
        from app.common.allocator import keep_freed_memory
        assert keep_freed_memory() if {keep} else True
        for i in range(8):
            if i == 2:
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            points = np.ones((16, 4, 294, 518, 3), np.float32)
            half, frame = points.astype(np.float16), np.ones((1080, 1920, 3), np.uint8)
            del points, half, frame
        print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 6)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return float(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt: glibc only")
def test_freed_window_arrays_are_reused_without_page_faults() -> None:
    default, kept = page_faults_per_window(False), page_faults_per_window(True)
    assert default > 100  # fresh pages every round (thousands with 4 KiB pages, ~100 with transparent huge pages)
    assert kept < 0.1 * default
