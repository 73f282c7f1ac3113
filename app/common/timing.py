"""Wall-clock and CPU seconds per pipeline stage, summed over a run (what ``benchmarks/pipeline_ceiling.py`` prints).

Stages run in several threads (decoding in the capture's prefetch thread, writing in the writer thread), so
their sum can exceed the run's wall time: a stage's seconds are the time its thread spent in it, not its share
of the run. Where the threads outnumber the cores, a stage's wall time also counts the time its thread waited for
a core; its CPU seconds (the thread's own, :func:`time.thread_time`; work a library hands to its own threads,
torch's intra-op pool, is not counted) say what it costs. :data:`STAGES` names them in pipeline order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

Stage = Literal["decode", "preprocess", "to_device", "model", "to_host", "unproject", "stitch", "agreement", "write"]
STAGES: tuple[Stage, ...] = (
    "decode", "preprocess", "to_device", "model", "to_host", "unproject", "stitch", "agreement", "write",
)  # fmt: skip


class StageTimer:
    """Thread-safe accumulator of seconds and call counts per :data:`Stage`.

    ``with timer.measure("decode"): ...`` adds the block's wall time and its thread's CPU time; :meth:`add` adds a
    measured duration (``cpu_seconds`` when known).
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.cpu_seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.calls: dict[str, int] = dict.fromkeys(STAGES, 0)
        self._lock = threading.Lock()

    def add(self, stage: Stage, seconds: float, cpu_seconds: float = 0.0) -> None:
        self._check(stage)
        with self._lock:
            self.seconds[stage] += seconds
            self.cpu_seconds[stage] += cpu_seconds
            self.calls[stage] += 1

    def add_cpu(self, stage: Stage, cpu_seconds: float) -> None:
        """Add CPU seconds other threads spent on ``stage`` (a pool working for the measuring thread)."""
        self._check(stage)
        with self._lock:
            self.cpu_seconds[stage] += cpu_seconds

    def _check(self, stage: str) -> None:
        if stage not in self.seconds:
            raise ValueError(f"unknown pipeline stage {stage!r}; one of {', '.join(STAGES)}")

    @contextmanager
    def measure(self, stage: Stage) -> Iterator[None]:
        tic, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - tic, time.thread_time() - cpu)

    def to_dict(self) -> dict[str, float]:
        """Wall seconds per stage."""
        with self._lock:
            return dict(self.seconds)

    def cpu_dict(self) -> dict[str, float]:
        """CPU seconds per stage (the measuring threads' own)."""
        with self._lock:
            return dict(self.cpu_seconds)
