"""app/common/blas_threads.py: the pipeline's process runs BLAS on one thread."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def blas_threads_after(code: str) -> list[int]:
    """The thread count of every BLAS library numpy loaded, in a fresh interpreter, after running ``code``."""
    script = textwrap.dedent(
        f"""
        import numpy as np
        from threadpoolctl import threadpool_info
        np.ones((64, 64)) @ np.ones((64, 64))  # BLAS loaded and used
        {code}
        print(",".join(str(info["num_threads"]) for info in threadpool_info() if info["user_api"] == "blas"))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    return [int(n) for n in out.stdout.strip().split(",") if n]


def test_single_threaded_blas_limits_numpys_blas_to_one_thread() -> None:
    if max(blas_threads_after(""), default=1) == 1:
        pytest.skip("BLAS runs one thread here already (one core, or OPENBLAS_NUM_THREADS=1): nothing to limit")
    limited = blas_threads_after("from app.common.blas_threads import single_threaded_blas; single_threaded_blas()")
    assert limited and all(n == 1 for n in limited)


def test_the_pipeline_limits_blas_when_it_runs() -> None:
    source = (REPO / "app/reconstruct/pipeline.py").read_text()
    body = source.split("def run_pipeline(", 1)[1].split("\ndef ", 1)[0]
    assert "single_threaded_blas()" in body and "keep_freed_memory()" in body
