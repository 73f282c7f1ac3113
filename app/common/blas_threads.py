"""One BLAS thread for the pipeline: its linear algebra is small, and BLAS's idle threads spin.

The pipeline's BLAS calls are 3x3 products over at most a few ten thousand points (the stitching's Sim(3) fits, the
agreement's homographies). OpenBLAS (numpy's) splits such a product over all cores and then keeps its worker
threads spinning for a while; on a machine whose cores are busy decoding and writing, that spinning took as much
CPU as the fits themselves (``benchmarks/README.md``, pipeline ceiling: a robust Sim(3) fit of 20 000 points,
0.19 s of CPU with two BLAS threads, 0.07 s with one, the same wall time).
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits

_limited = False


def single_threaded_blas() -> None:
    """Limit every BLAS library loaded in this process (OpenBLAS, MKL, BLIS) to one thread, for the rest of the
    process (once; later calls do nothing). torch's own intra-op threads are not BLAS threads and keep their count."""
    global _limited
    if not _limited:
        threadpool_limits(limits=1, user_api="blas")
        _limited = True
