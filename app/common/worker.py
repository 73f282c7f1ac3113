"""Background threads: the one place in ``app/`` that starts a thread.

:class:`Worker` runs ``target(stop)`` in a named daemon thread; ``stop`` (a :class:`threading.Event`) is set by
:meth:`Worker.request_stop`, and the target looks at it when it can stop (between two windows, two frames, ...).
:meth:`Worker.join` waits for the thread, and does nothing when called from the thread itself.

:class:`QueueWorker` is a :class:`Worker` whose target is a generator, ``body(jobs)``: what it yields reaches the
caller through a bounded queue (:meth:`QueueWorker.get`, or iterate), the jobs the caller :meth:`~QueueWorker.submit`
reach it through ``jobs`` (a producer that takes no jobs ignores it). The body runs ahead until the queue holds
``ahead`` items, then waits. An exception of the body is raised by the caller's next :meth:`~QueueWorker.get`, with
the body's traceback. :meth:`QueueWorker.close` (also on leaving a ``with`` block, so on a ``KeyboardInterrupt`` in
the caller too) stops the body at its next hand-over (the item it is computing is finished first; its ``finally``
blocks run in the worker's thread), drops what was not read and waits for the thread to end.

Used by the capture's decoding ahead (:meth:`app.capture.rig.RigCapture.iter_timesteps`), the pipeline's window
feeder and writer (:mod:`app.reconstruct.feeding`, :mod:`app.reconstruct.writing`), the viewer's background run
(:mod:`app.viewer.live`) and the viewer's own loops (:mod:`app.viewer.server`).

:class:`TaskPool` runs independent tasks on a few threads and returns when all are done: for work that releases the
GIL (numpy's array loops, zstd, file writes), such as the pieces of one window the writer computes and saves.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Generic, TypeVar

J = TypeVar("J")  # a job handed to the worker
R = TypeVar("R")  # an item the worker hands back

POLL_S = 0.1  # how often a waiting side looks whether the other has stopped


class Worker:
    """``target(stop)`` in a daemon thread named ``name`` (started by :meth:`start`, at once with ``start=True``).

    An exception that escapes ``target`` goes where an uncaught thread exception goes (:func:`threading.excepthook`);
    a target that reports its errors otherwise catches them itself."""

    def __init__(self, target: Callable[[threading.Event], object], *, name: str, start: bool = False) -> None:
        self.name = name
        self.stop_event = threading.Event()
        self._thread = threading.Thread(target=target, args=(self.stop_event,), name=name, daemon=True)
        if start:
            self._thread.start()

    def start(self) -> Worker:
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Set the target's ``stop`` event (returns at once)."""
        self.stop_event.set()

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s (None: as long as it takes) for the thread to end; whether it has. Called from
        the worker's own thread: returns False at once."""
        if self._thread is threading.current_thread():
            return False
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()


class _Failed:
    """The body's exception, on its way to the caller."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()  # the body is done
_WAKE = object()  # put among the jobs on a stop request: a body waiting for a job sees the stop at once


class QueueWorker(Worker, Generic[J, R]):
    """``body(jobs)`` in a daemon thread: what it yields is handed back through a queue of at most ``ahead`` items,
    the jobs submitted reach it through ``jobs`` (at most ``pending`` waiting). See the module docstring."""

    def __init__(
        self,
        body: Callable[[Iterator[J]], Iterable[R]],
        *,
        name: str,
        ahead: int = 1,
        pending: int = 1,
    ) -> None:
        super().__init__(self._run, name=name)
        self._body = body
        self._out: queue.Queue[R | _Failed | object] = queue.Queue(maxsize=max(1, ahead))
        self._jobs: queue.Queue[J | object] = queue.Queue(maxsize=max(1, pending))
        self._finished = False
        self.start()

    # ------------------------------------------------------------------ caller's side
    def request_stop(self) -> None:
        """Set the body's ``stop`` event and wake a body waiting for a job (returns at once; a body busy with a job
        stops at its next hand-over)."""
        super().request_stop()
        with contextlib.suppress(queue.Full):  # full: the body takes a job, then sees the stop
            self._jobs.put_nowait(_WAKE)

    def submit(self, job: J) -> None:
        """Hand ``job`` to the body (waits while ``pending`` jobs wait already); a RuntimeError once the worker
        has ended."""
        while True:
            if not self.alive or self.stopping:
                raise RuntimeError(f"worker {self.name!r} has stopped; job not taken")
            try:
                self._jobs.put(job, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def get(self) -> R:
        """The body's next item (waits for it); raises the body's exception, StopIteration when it is done."""
        if self._finished:
            raise StopIteration(f"worker {self.name!r} is done")
        item = self._out.get()
        if item is _END:
            self._finished = True
            raise StopIteration(f"worker {self.name!r} is done")
        if isinstance(item, _Failed):
            self._finished = True
            raise item.error
        return item  # type: ignore[return-value]  # neither _END nor _Failed: one of the body's items

    def __iter__(self) -> Iterator[R]:
        return self

    def __next__(self) -> R:
        return self.get()

    def close(self) -> None:
        """Stop the body at its next hand-over, drop what it handed back unread and wait for its thread to end."""
        self.request_stop()
        while self.alive:
            try:
                self._out.get_nowait()
            except queue.Empty:
                self.join(POLL_S / 2)
        self._finished = True

    def __enter__(self) -> QueueWorker[J, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ worker's side
    def _hand_back(self, item: R | _Failed | object) -> bool:
        """Put ``item`` in the queue, waiting while it is full; False (dropped) once the caller has stopped."""
        while not self.stopping:
            try:
                self._out.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _take_jobs(self) -> Iterator[J]:
        """The jobs submitted, in order, until the worker is stopped."""
        while not self.stopping:
            try:
                job = self._jobs.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if job is not _WAKE:
                yield job  # type: ignore[misc]  # not the wake-up marker: a job the caller submitted

    def _run(self, stop: threading.Event) -> None:
        items: Iterable[R] | None = None
        try:
            items = self._body(self._take_jobs())
            for item in items:
                if not self._hand_back(item):
                    return
            self._hand_back(_END)
        except BaseException as error:  # handed to the caller
            self._hand_back(_Failed(error))
        finally:
            close = getattr(items, "close", None)
            if callable(close):  # a generator stopped early: its finally blocks run here, in this thread
                close()


class TaskPool:
    """``threads`` threads named ``name`` for independent tasks; one thread: the caller's own, no thread started.

    :meth:`map_all` runs ``fn`` on every item and returns the results in order once *every* task has ended (so a
    caller that cleans up after a failure never races a task still running); the first failed task's exception, in
    item order, is raised then. :attr:`cpu_seconds` sums the CPU time (:func:`time.thread_time`) the pool's own threads
    spent on tasks, which a caller timing its own thread would not see (a one-thread pool runs them in the caller's
    thread: the caller's timing has them, and they are not counted here). :meth:`close` waits for running tasks and
    drops queued ones."""

    def __init__(self, threads: int, *, name: str) -> None:
        if threads < 1:
            raise ValueError(f"a task pool needs at least one thread, got {threads}")
        self.threads = threads
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=name) if threads > 1 else None
        self._lock = threading.Lock()
        self.cpu_seconds = 0.0

    def map_all(self, fn: Callable[[J], R], items: Iterable[J]) -> list[R]:
        """``[fn(item) for item in items]``, the calls spread over the pool's threads."""

        def timed(item: J) -> R:
            cpu = time.thread_time()
            try:
                return fn(item)
            finally:
                spent = time.thread_time() - cpu
                with self._lock:
                    self.cpu_seconds += spent

        if self._executor is None:
            return [fn(item) for item in items]
        futures = [self._executor.submit(timed, item) for item in items]
        wait(futures)
        return [future.result() for future in futures]

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> TaskPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
