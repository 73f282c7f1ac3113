"""Writing windows in a background thread, one at a time, in order (see :mod:`app.reconstruct.feeding` for the
whole thread layout).

:meth:`WindowWriter.flush` waits until the window in flight is committed; :meth:`WindowWriter.submit` hands the
next one to the thread and returns at once (at most one window is in flight, so a crash loses at most the window
being written): window ``w`` is written while window ``w + 1`` is computed. Each write is
:meth:`Reconstruction.write_window`'s atomic folder rename, so ``--resume`` and readers only ever see complete
windows. The thread also computes what the store derives from a window before writing it (its multi-view
agreement, :meth:`Reconstruction.complete_window`; timed as the ``agreement`` stage). Both spread a window's
pieces (its timesteps' agreement, its array files' compression) over :data:`WRITE_THREADS` threads: numpy's loops
and zstd release the GIL, so the writer uses the cores decoding leaves free, and the last window, written after
everything else is done, takes a fraction of the time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from app.common.timing import Stage, StageTimer
from app.common.worker import QueueWorker, TaskPool
from app.reconstruct.record import WindowEntry
from app.reconstruct.store import EncodedWindow, Reconstruction

WRITE_THREADS = max(1, min(4, os.cpu_count() or 1))  # beyond 4 the pieces of one window are too few to share
WriteJob = tuple[int, EncodedWindow | dict[str, np.ndarray], WindowEntry | dict[str, Any]]  # (index, window, info)


class WindowWriter:
    """``flush()`` then ``submit(w, window, info)`` for each window in order (``window``:
    :meth:`Reconstruction.encode_window`'s result, saved as it is, or the arrays to encode in the thread). Errors of
    a write are raised by the next :meth:`flush`."""

    def __init__(self, recon: Reconstruction, timer: StageTimer) -> None:
        self.recon, self.timer = recon, timer
        self._tasks = TaskPool(WRITE_THREADS, name="window-writer-task")
        self._pending: int | None = None
        self._worker: QueueWorker[WriteJob, BaseException | None] = QueueWorker(
            self._work, name="window-writer", ahead=1, pending=1
        )

    def submit(
        self, index: int, window: EncodedWindow | dict[str, np.ndarray], info: WindowEntry | dict[str, Any]
    ) -> None:
        """Start writing window ``index`` (the previous one must be flushed)."""
        if self._pending is not None:
            raise RuntimeError(f"window {self._pending} is still being written; flush() first")
        self._pending = index
        self._worker.submit((index, window, info))

    def flush(self) -> int | None:
        """Wait for the window in flight; its index (None when there was none)."""
        if self._pending is None:
            return None
        index, self._pending = self._pending, None
        error = self._worker.get()
        if error is not None:
            raise error
        return index

    def close(self) -> None:
        """Stop the thread after the window in flight (errors are not raised here: call :meth:`flush` for them)."""
        try:
            if self._pending is not None:  # submitted, maybe not yet taken by the thread: it is still written
                self._pending = None
                self._worker.get()
        finally:
            self._worker.close()
            self._tasks.close()

    @contextmanager
    def _stage(self, stage: Stage) -> Iterator[None]:
        """Time ``stage`` in this thread, its CPU seconds including what the task threads spent on it meanwhile."""
        before = self._tasks.cpu_seconds
        with self.timer.measure(stage):
            yield
        self.timer.add_cpu(stage, self._tasks.cpu_seconds - before)

    def _work(self, jobs: Iterator[WriteJob]) -> Iterator[BaseException | None]:
        """Each job's outcome: None (committed) or the write's error (handed to :meth:`flush`)."""
        for index, window, info in jobs:
            outcome: BaseException | None = None
            try:
                if isinstance(window, dict):
                    with self._stage("write"):
                        window = self.recon.encode_window(index, window)
                if window.index != index:
                    raise RuntimeError(f"window {window.index} submitted as window {index}")
                with self._stage("agreement"):  # its views_agree, here: while the next window is computed
                    window = self.recon.complete_window(window, self._tasks)
                with self._stage("write"):
                    self.recon.commit_window(window, info, self._tasks)
            except BaseException as error:  # handed to the main thread
                outcome = error
            yield outcome
